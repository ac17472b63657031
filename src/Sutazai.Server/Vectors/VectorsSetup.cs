namespace Sutazai.Server.Vectors;

public static class VectorsSetup
{
    /// <summary>The raw vector API; its indexes come from the knowledge feature's configured vector engine.</summary>
    public static WebApplicationBuilder AddSutazaiVectors(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<RawVectorIndexes>();
        return builder;
    }
}
