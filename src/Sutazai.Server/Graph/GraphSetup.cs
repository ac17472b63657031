namespace Sutazai.Server.Graph;

public static class GraphSetup
{
    public static WebApplicationBuilder AddSutazaiGraph(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<GraphOptions>().BindConfiguration(GraphOptions.Section)
            .Validate(o => o.MaxFacts is >= 0 and <= 100, "Sutazai:Knowledge:Graph:MaxFacts must be between 0 and 100.")
            .ValidateOnStart();
        builder.Services.AddSingleton<GraphStore>();
        builder.Services.AddScoped<GraphQueries>();
        return builder;
    }
}
