using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

public sealed class StartupTests
{
    private static string RepoRoot() => Repository.Root;

    [Fact]
    public async Task InvalidConfig_ProcessExitsNonZeroListingEveryError()
    {
        var directory = Directory.CreateTempSubdirectory("quotaproxy-badconfig-").FullName;
        var configFile = Path.Combine(directory, "bad.json");
        await File.WriteAllTextAsync(configFile, """
            {
              "ReverseProxy": {
                "Routes": { "quotes": { "ClusterId": "vendor", "Match": { "Path": "/q" }, "Metadata": { "Quota.Pool": "missing", "Quota.Cost": "0" } } },
                "Clusters": { "vendor": { "Destinations": { "d": { "Address": "http://127.0.0.1:9/" } } } }
              },
              "Quota": { "Pools": { "daily": { "Limit": 10, "Window": "1week", "Tenants": { "prod": { "Limit": 11, "Alocation": 5 } } } } }
            }
            """);
        var (code, _, errors) = await RunBinaryAsync("--config", configFile, "--urls", "http://127.0.0.1:0");

        Assert.Equal(2, code);
        Assert.Contains("the configuration has 5 error(s)", errors, StringComparison.Ordinal);
        Assert.Contains("Quota:Pools:daily:Tenants:prod:Alocation is not a setting; did you mean Allocation?", errors, StringComparison.Ordinal);
        Assert.Contains("ReverseProxy:Routes:quotes:Metadata:Quota.Pool names unknown pool 'missing'; known pools: daily.", errors, StringComparison.Ordinal);
        Assert.Contains("ReverseProxy:Routes:quotes:Metadata:Quota.Cost must be a positive integer, got '0'.", errors, StringComparison.Ordinal);
        Assert.Contains("Quota:Pools:daily:Window must be one of 1s, 1m, 1h, 1d, 1mo, got '1week'.", errors, StringComparison.Ordinal);
        Assert.Contains("Quota:Pools:daily:Tenants:prod:Limit must be ≤ the pool's Limit (10), got 11.", errors, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Output, string Error)> RunBinaryAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, WorkingDirectory = Path.GetTempPath() };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "QuotaProxy.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return (process.ExitCode, await output, await error);
    }

    [Fact]
    public async Task Check_ValidatesAConfigAsAStartWould_AndPrintsTheEffectiveModel_WithoutListening()
    {
        var valid = await RunBinaryAsync("check", "--config", Path.Combine(RepoRoot(), "src", "Proxy", "appsettings.json"), "--urls", $"http://127.0.0.1:{LoopbackPorts.Free()}");
        var invalidFile = Path.Combine(Directory.CreateTempSubdirectory("quotaproxy-check-").FullName, "bad.json");
        await File.WriteAllTextAsync(invalidFile, """{ "Quota": { "Pools": { "daily": { "Limit": 10, "Window": "1week", "Tenants": { "prod": {} } } } } }""");
        var invalid = await RunBinaryAsync("check", "--config", invalidFile);

        Assert.Equal(0, valid.Code);
        Assert.Equal(
            ["configuration OK: store InProcess, ledger off, admin API http://127.0.0.1:9090", "pool demo-minute: 10 credits per 1m (UTC), vendor closure at most 01:00:00", "  dev: limit 2, allocation 0, guaranteed 0", "  prod: limit 10, allocation 0, guaranteed 0", "  test: limit 4, allocation 0, guaranteed 0"],
            valid.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(2, invalid.Code);
        Assert.Contains("Quota:Pools:daily:Window must be one of 1s, 1m, 1h, 1d, 1mo, got '1week'.", invalid.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HelpAndVersion_AnswerAndExit_WithoutStartingAServer()
    {
        var help = await RunBinaryAsync("--help");
        var version = await RunBinaryAsync("--version");

        Assert.Equal(0, help.Code);
        Assert.Contains("QuotaProxy check --config FILE", help.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Now listening", help.Output, StringComparison.Ordinal);
        Assert.Equal(0, version.Code);
        Assert.Matches(@"^QuotaProxy \d+\.\d+\.\d+", version.Output);
    }

    [Theory]
    [InlineData(null, "was not found")]
    [InlineData("{ \"Quota\": { \"Pools\": ", "cannot be read")]
    public async Task AConfigFileMissingOrNotJson_StopsTheStartWithOneClearLine_AndExitCode2(string? content, string expected)
    {
        var directory = Directory.CreateTempSubdirectory("quotaproxy-unreadable-").FullName;
        var configFile = Path.Combine(directory, "config.json");
        if (content is not null)
        {
            await File.WriteAllTextAsync(configFile, content);
        }

        var (code, _, error) = await RunBinaryAsync("--config", configFile, "--urls", "http://127.0.0.1:0");
        var lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(2, code);
        var line = Assert.Single(lines);
        Assert.StartsWith("QuotaProxy did not start: the configuration file cannot be read:", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InstallQuotactl_MakesAQuotactlCommand_ThatAnswersOnItsOwn()
    {
        var prefix = Directory.CreateTempSubdirectory("quotaproxy-prefix-").FullName;
        try
        {
            var install = new ProcessStartInfo("bash") { ArgumentList = { Path.Combine(RepoRoot(), "scripts", "install-quotactl.sh") }, RedirectStandardOutput = true, RedirectStandardError = true };
            install.Environment["PREFIX"] = prefix;
            using (var installing = Process.Start(install)!)
            {
                var said = installing.StandardOutput.ReadToEndAsync();
                var complained = installing.StandardError.ReadToEndAsync();
                await installing.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
                Assert.True(installing.ExitCode == 0, await complained);
                Assert.Contains($"quotactl installed: {prefix}/bin/quotactl", await said, StringComparison.Ordinal);
            }

            var help = new ProcessStartInfo(Path.Combine(prefix, "bin", "quotactl")) { ArgumentList = { "reset", "--help" }, RedirectStandardOutput = true, RedirectStandardError = true };
            using var helping = Process.Start(help)!;
            var output = await helping.StandardOutput.ReadToEndAsync();
            await helping.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(0, helping.ExitCode);
            Assert.Contains("quotactl reset [options]", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(prefix, recursive: true);
        }
    }

    [Fact]
    public async Task TheReadmesExampleCommand_RunsTheWorkedExampleLocally()
    {
        // The two lines of the README, as written, but for the ports (free ones, so that a demo proxy running on
        // this machine neither fails nor passes the test) and $PWD (the repository root).
        var readme = File.ReadAllLines(Path.Combine(RepoRoot(), "README.md"));
        var first = Array.FindIndex(readme, line => line.StartsWith("VENDOR_AUTHORIZATION='Bearer example' dotnet run --project src/Proxy -- ", StringComparison.Ordinal));
        Assert.True(first >= 0, "the README shows how to run the example locally");
        var command = readme[first].TrimEnd('\\').Trim() + " " + readme[first + 1].Trim();
        var curl = readme[first + 2];
        var (proxyPort, vendorPort) = (LoopbackPorts.Free(), LoopbackPorts.Free());
        var args = command[(command.IndexOf(" -- ", StringComparison.Ordinal) + 4)..]
            .Replace("\"$PWD/", RepoRoot() + "/", StringComparison.Ordinal).Replace(".json\"", ".json", StringComparison.Ordinal)
            .Replace("127.0.0.1:8081", $"127.0.0.1:{vendorPort}", StringComparison.Ordinal).Replace("127.0.0.1:8080", $"127.0.0.1:{proxyPort}", StringComparison.Ordinal)
            .Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = Path.GetTempPath(), RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "QuotaProxy.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["VENDOR_AUTHORIZATION"] = "Bearer example";
        using var process = Process.Start(start)!;
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        try
        {
            await LoopbackPorts.WaitUntilAsync(async () => await LoopbackPorts.IsListeningAsync(proxyPort), true, "the example proxy", 30);
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{proxyPort}") };
            Assert.StartsWith("curl -H 'X-Api-Key: example-test-key' localhost:8080/v1/downloads/report.csv", curl, StringComparison.Ordinal);
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/downloads/report.csv");
            request.Headers.Add("X-Api-Key", "example-test-key");
            using var response = await client.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();

            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
            Assert.Contains("stand-in vendor", body, StringComparison.Ordinal);
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, await SendAsync(client, "/v1/downloads/report.csv", "not-an-example-key"));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task ConfigFile_StandsAlone_TheDemoRoutesKeysAndAdminApiOfAppsettingsAreNotMergedIn()
    {
        using var vendor = new VendorServer();
        var directory = Directory.CreateTempSubdirectory("quotaproxy-config-").FullName;
        // The demo appsettings.json right where the process looks for it: it must not count.
        File.Copy(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), Path.Combine(directory, "appsettings.json"));
        var configFile = Path.Combine(directory, "production.json");
        new TestProxyConfig(vendor.Url).Pool("daily", 10, tenants: ("prod", null)).Route("quotes", pool: "daily").ApiKey("prod-key", "prod").WriteJson(configFile);
        var port = LoopbackPorts.Free();
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "QuotaProxy.dll"), "--config", configFile, "--urls", $"http://127.0.0.1:{port}" },
            WorkingDirectory = directory,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        using var process = Process.Start(start)!;
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        process.OutputDataReceived += (_, line) => output.Enqueue(line.Data?.Trim() ?? "");
        process.BeginOutputReadLine();
        _ = process.StandardError.ReadToEndAsync();
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            await LoopbackPorts.WaitUntilAsync(async () => await LoopbackPorts.IsListeningAsync(port), true, "the proxy", 30);

            var prod = await SendAsync(client, "/quotes/x", "prod-key");
            var demoKey = await SendAsync(client, "/quotes/x", "demo-test-key");
            var demoRoute = await SendAsync(client, "/vendor/quotes/AAPL", "prod-key");

            Assert.Equal(System.Net.HttpStatusCode.OK, prod);
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, demoKey);
            Assert.Equal(System.Net.HttpStatusCode.NotFound, demoRoute);
            // The demo's admin API would add a second address. Read from what the process says, so that a demo
            // proxy running on this machine can neither fail nor pass the test.
            await Poll.UntilAsync("the host to say it has started", () => Task.FromResult(output.ToArray()), lines => lines.Any(l => l.StartsWith("Application started", StringComparison.Ordinal)), TimeSpan.FromSeconds(10));
            Assert.Equal([$"Now listening on: http://127.0.0.1:{port}"], output.Where(line => line.StartsWith("Now listening on:", StringComparison.Ordinal)));
        }
        finally
        {
            process.Kill();
            await process.WaitForExitAsync();
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<System.Net.HttpStatusCode> SendAsync(HttpClient client, string path, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("X-Api-Key", key);
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }

    public static TheoryData<string> ExampleConfigs() => [.. Directory.GetFiles(Path.Combine(RepoRoot(), "config"), "*.json").Select(Path.GetFileName).OfType<string>()];

    [Theory]
    [MemberData(nameof(ExampleConfigs))]
    public void ExampleConfig_IsValid(string file)
    {
        var configuration = new ConfigurationBuilder().AddJsonFile(Path.Combine(RepoRoot(), "config", file)).Build();

        // Example configs name their secrets by environment variable; any value will do for the check.
        var snapshot = CandidateConfiguration.Load(configuration, new Dictionary<string, TenantOverride>(), _ => "set", out var errors);

        Assert.Empty(errors);
        Assert.NotEmpty(snapshot!.Options.Pools);
    }

    [Fact]
    public void EmbeddedDefault_AppSettingsIsValid()
    {
        var configuration = new ConfigurationBuilder().AddJsonFile(Path.Combine(RepoRoot(), "src", "Proxy", "appsettings.json")).Build();
        var options = configuration.GetSection(QuotaOptions.SectionName).Get<QuotaOptions>() ?? new QuotaOptions();

        Assert.Empty(QuotaOptionsValidator.Validate(options, configuration.GetSection(QuotaOptionsValidator.RoutesSection), _ => null));
        Assert.Equal(StoreKind.InProcess, options.Store.Kind);
    }
}
