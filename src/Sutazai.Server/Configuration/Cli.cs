namespace Sutazai.Server.Configuration;

/// <summary>Subcommands of the server binary that do not start the web host.</summary>
public static class Cli
{
    /// <summary>Runs a subcommand when <paramref name="args"/> names one; returns its exit code, or null to start the server.</summary>
    public static int? TryRun(string[] args, TextWriter output)
    {
        if (args is ["config", "docs", ..])
        {
            output.Write(SettingsRegistry.ToMarkdown());
            return 0;
        }
        if (args is ["config", "list", ..])
        {
            foreach (var s in SettingsRegistry.All) output.WriteLine($"{s.Key}={s.Default}");
            return 0;
        }
        if (args is ["--help" or "-h" or "help", ..])
        {
            output.WriteLine("""
                SutazAI server

                  sutazai                      start the server (API, UI, workers) on the configured URLs
                  sutazai config docs          print docs/configuration.md (every setting, default, description)
                  sutazai config list          print every setting with its default
                  sutazai models               list every model of every configured provider
                  sutazai pull <source>        download a model with a progress bar: hf:owner/repo/file.gguf,
                                               an https:// URL to a .gguf file, or an Ollama model name

                Settings: --Sutazai:Key=value, environment Sutazai__Key, or appsettings.json.
                """);
            return 0;
        }
        return null;
    }
}
