using System.Reflection;

namespace QuotaProxy.Cli;

/// <summary>
/// <c>QuotaProxy check --config FILE</c> (like <c>nginx -t</c>): the configuration validated exactly as a start
/// would, and the effective model printed, without listening or connecting to anything. <c>--help</c> and
/// <c>--version</c> answer and exit too.
/// </summary>
internal static class ConfigCheck
{
    public const string Usage = """
        usage: QuotaProxy [--config FILE] [--urls URLS] [Section:Key=value ...]   run the proxy
               QuotaProxy check --config FILE     validate FILE as a start would and print the effective model (exit 0 valid, 2 not)
               QuotaProxy quotactl <command> ...  the operator's command line (QuotaProxy quotactl --help)
               QuotaProxy --help | --version
        Without --config the embedded demo runs (an in-process store, a stand-in vendor).

        """;

    public static string Version =>
        typeof(ConfigCheck).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(ConfigCheck).Assembly.GetName().Version?.ToString()
        ?? "unknown";
}
