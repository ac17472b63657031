namespace Sutazai.Server.Conversations;

public static class ConversationsSetup
{
    public static WebApplicationBuilder AddSutazaiConversations(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<ConversationOptions>().BindConfiguration(ConversationOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<ReplyHub>();
        builder.Services.AddScoped<ConversationService>();
        builder.Services.AddSingleton<Chat.ChatSocketRegistry>();
        builder.Services.AddSingleton<Hosting.NodeIdentity>();
        // Registered after the database set-up, so it runs once the schema is current.
        builder.Services.AddHostedService<InterruptedReplies>();
        return builder;
    }
}
