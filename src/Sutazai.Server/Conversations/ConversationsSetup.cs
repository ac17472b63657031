namespace Sutazai.Server.Conversations;

public static class ConversationsSetup
{
    public static WebApplicationBuilder AddSutazaiConversations(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<ConversationOptions>().BindConfiguration(ConversationOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<ReplyHub>();
        builder.Services.AddScoped<ConversationStore>();
        builder.Services.AddScoped<ReplyPipeline>();
        builder.Services.AddScoped<ReplyGrounding>();
        builder.Services.AddSingleton<ContextFitter>();
        builder.Services.AddSingleton<ReplyGenerator>();
        builder.Services.AddSingleton<Hosting.NodeIdentity>();
        // Registered after the database set-up, so it runs once the schema is current.
        builder.Services.AddSingleton<Hosting.IStartupStep, InterruptedReplies>();
        return builder;
    }
}
