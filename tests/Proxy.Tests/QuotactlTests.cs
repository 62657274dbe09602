using System.Net;
using QuotaProxy.Cli;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary><c>quotactl</c> against a running proxy's admin API, over a real socket.</summary>
public sealed class QuotactlTests
{
    private const string AdminKey = "cli-admin-key";

    private static TestProxyConfig Config(VendorServer vendor) => new TestProxyConfig(vendor.Url)
        .Pool("daily", 250, "1d", "UTC", ("prod", 225), ("e2e", 10))
        .Route("quotes", pool: "daily", cost: 1)
        .ApiKey("e2e-key", "e2e")
        .Admin(LoopbackPorts.Free(), AdminKey);

    private static async Task<(int Code, string Output, string Error)> RunAsync(ProxyInstance proxy, params string[] args) =>
        await RunAsync([.. args, "--url", proxy.AdminAddress!.ToString(), "--key", AdminKey]);

    /// <param name="terminal">What an operator at a terminal types; null: not a terminal (a script, a pipe).</param>
    private static async Task<(int Code, string Output, string Error)> RunAsync(string[] args, string? terminal = null)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        using var input = terminal is null ? null : new StringReader(terminal);
        var code = await Quotactl.RunAsync(args, output, error, input: input);
        return (code, output.ToString(), error.ToString());
    }

    private static async Task<long> UsedAsync(ProxyInstance proxy, string tenant)
    {
        var status = await RunAsync(proxy, "status", "--json");
        var pool = System.Text.Json.JsonDocument.Parse(status.Output).RootElement.GetProperty("pools")[0];
        return pool.GetProperty("tenants").EnumerateArray().Single(t => t.GetProperty("tenant").GetString() == tenant).GetProperty("used").GetInt64();
    }

    [Fact]
    public async Task AMistypedOption_IsAnError_WithTheNearestName_AndNothingIsDone()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));
        await proxy.SendAsync("e2e-key", 3, "/quotes/x");

        // --tenat: before System.CommandLine, an unknown option was ignored, and this reset every tenant.
        var typo = await RunAsync(proxy, "reset", "--pool", "daily", "--tenat", "e2e");
        var unknownCommand = await RunAsync(proxy, "statsu");

        Assert.Equal(2, typo.Code);
        Assert.Contains("quotactl: '--tenat' is not an option of reset, did you mean '--tenant'?", typo.Error);
        Assert.Contains("nothing was done", typo.Error);
        Assert.Equal(3, await UsedAsync(proxy, "e2e"));
        Assert.Equal(2, unknownCommand.Code);
        Assert.StartsWith("quotactl: unknown command 'statsu', did you mean 'status'?", unknownCommand.Error);
    }

    [Fact]
    public async Task EveryCommand_HasHelp_OptionsTakeEqualsValues_AndReadCommandsPrintJson()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));
        await proxy.SendAsync("e2e-key", 2, "/quotes/x");

        var helps = new List<(int Code, string Output, string Error)>();
        foreach (var command in new[] { "status", "allocate", "reset", "reopen", "usage" })
        {
            helps.Add(await RunAsync([command, "--help"]));
        }

        var allocate = await RunAsync(proxy, "allocate", "--pool=daily", "--tenant=e2e", "--limit=20");
        var json = await RunAsync(proxy, "status", "--pool", "daily", "--json");

        Assert.All(helps, help => Assert.Equal(0, help.Code));
        Assert.All(helps.Zip(new[] { "status", "allocate", "reset", "reopen", "usage" }), pair => Assert.Contains($"quotactl {pair.Second} [options]", pair.First.Output));
        Assert.Equal(0, allocate.Code);
        Assert.Contains("daily/e2e: limit 20 in force in every replica", allocate.Output);
        Assert.Equal(0, json.Code);
        Assert.DoesNotContain("\\u002B", json.Output); // dates as people read them: +00:00, not \u002B00:00
        var e2e = System.Text.Json.JsonDocument.Parse(json.Output).RootElement.GetProperty("pools")[0].GetProperty("tenants").EnumerateArray().Single(t => t.GetProperty("tenant").GetString() == "e2e");
        Assert.Equal((2L, 20L), (e2e.GetProperty("used").GetInt64(), e2e.GetProperty("limit").GetInt64()));
    }

    [Fact]
    public async Task Overrides_AreListed_AndDropped_AndTheAuditWithoutALedgerSaysWhy()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));

        var none = await RunAsync(proxy, "overrides", "list");
        await RunAsync(proxy, "allocate", "--pool", "daily", "--tenant", "e2e", "--limit", "7");
        var listed = await RunAsync(proxy, "overrides", "list");
        var json = await RunAsync(proxy, "overrides", "list", "--json");
        var dropped = await RunAsync(proxy, "overrides", "drop", "--pool", "daily", "--tenant", "e2e");
        var after = await RunAsync(proxy, "overrides", "list");
        var audit = await RunAsync(proxy, "audit");

        Assert.Equal((0, "no overrides: every tenant has its configured values\n"), (none.Code, none.Output));
        Assert.Matches(@"\ndaily +e2e +7 +- +- *\n$", listed.Output);
        Assert.Equal(7, System.Text.Json.JsonDocument.Parse(json.Output).RootElement.GetProperty("overrides")[0].GetProperty("limit").GetInt64());
        Assert.Equal((0, "daily/e2e: back to its configured values in every replica\n"), (dropped.Code, dropped.Output));
        Assert.Equal("no overrides: every tenant has its configured values\n", after.Output);
        Assert.Equal(1, audit.Code);
        Assert.StartsWith("quotactl: 404 The audit trail is kept in the ledger's PostgreSQL", audit.Error);
    }

    [Fact]
    public async Task Reset_OnATerminal_AsksFirst_ANoChangesNothing_AndYesOrAYesAnswerResets()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));
        await proxy.SendAsync("e2e-key", 4, "/quotes/x");
        string[] reset = ["reset", "--pool", "daily", "--tenant", "e2e", "--url", proxy.AdminAddress!.ToString(), "--key", AdminKey];

        var declined = await RunAsync(reset, terminal: "n\n");
        var usedAfterNo = await UsedAsync(proxy, "e2e");
        var accepted = await RunAsync(reset, terminal: "y\n");
        await proxy.SendAsync("e2e-key", 2, "/quotes/x");
        var withYes = await RunAsync([.. reset, "--yes"], terminal: "");

        Assert.Equal(1, declined.Code);
        Assert.StartsWith("Give back this window's credits of daily/e2e and every tenant below it? [y/N] ", declined.Output);
        Assert.Equal("quotactl: not reset; nothing was changed\n", declined.Error);
        Assert.Equal(4, usedAfterNo);
        Assert.Equal(0, accepted.Code);
        Assert.EndsWith("daily/e2e: its credits of this window given back\n", accepted.Output);
        Assert.Equal((0, "daily/e2e: its credits of this window given back\n"), (withYes.Code, withYes.Output));
        Assert.Equal(0, await UsedAsync(proxy, "e2e"));
    }

    [Fact]
    public async Task Status_PrintsEveryTenantWithAUsageBar_AndAllocateChangesTheNextRequestsFate()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));
        var spent = await proxy.SendAsync("e2e-key", 11, "/quotes/x");

        var status = await RunAsync(proxy, "status");
        var allocate = await RunAsync(proxy, "allocate", "--pool", "daily", "--tenant", "e2e", "--limit", "20");
        var next = await proxy.SendAsync("e2e-key", 1, "/quotes/x");
        var after = await RunAsync(proxy, "status", "--tenant", "e2e");

        Assert.Equal(10, spent.Admitted);
        Assert.Equal(0, status.Code);
        Assert.Contains("POOL daily (1d)  [#...................]   4% 10/250  resets in ", status.Output);
        Assert.Matches(@"\n  e2e +\[####################\] 100% +10 +10 +0 ", status.Output);
        Assert.Matches(@"\n  prod +\[\.{20}\]   0% +0 +225 +225 ", status.Output);
        Assert.Equal(0, allocate.Code);
        Assert.Contains("daily/e2e: limit 20 in force in every replica", allocate.Output);
        Assert.Equal(HttpStatusCode.OK, next.Statuses.Single());
        Assert.Matches(@"\n  e2e \* +\[###########\.{9}\]  55% +11 +20 +9 ", after.Output);
        Assert.DoesNotContain("prod", after.Output);
    }

    [Fact]
    public async Task StatusWatch_RedrawsTheTableEverySecond_UntilStopped()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));
        using var output = new StringWriter();
        // Synchronized: the test reads what the watch has drawn so far while it draws.
        var shared = TextWriter.Synchronized(output);
        string[] Screens()
        {
            lock (shared)
            {
                return output.ToString().Split("\u001b[H\u001b[2J", StringSplitOptions.RemoveEmptyEntries);
            }
        }

        using var stop = new CancellationTokenSource();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var run = Quotactl.RunAsync(["status", "--watch", "1", "--url", proxy.AdminAddress!.ToString(), "--key", AdminKey], shared, TextWriter.Null, stop.Token);
        await Poll.UntilAsync("two screens of quotactl status --watch", () => Task.FromResult(Screens().Length), drawn => drawn >= 2, TimeSpan.FromSeconds(15));
        await stop.CancelAsync();
        var code = await run.WaitAsync(TimeSpan.FromSeconds(10));
        var elapsed = watch.Elapsed;

        Assert.Equal(0, code);
        var screens = Screens();
        // One screen at once, then one a second: never more than the seconds elapsed allow.
        Assert.InRange(screens.Length, 2, (int)elapsed.TotalSeconds + 2);
        Assert.All(screens, screen => Assert.Contains("POOL daily (1d)", screen));
    }

    [Fact]
    public async Task Reset_GivesTheCreditsBack()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));
        await proxy.SendAsync("e2e-key", 10, "/quotes/x");

        var reset = await RunAsync(proxy, "reset", "--pool", "daily", "--tenant", "e2e");

        Assert.Equal((0, "daily/e2e: its credits of this window given back\n"), (reset.Code, reset.Output));
        Assert.Equal(1, (await proxy.SendAsync("e2e-key", 1, "/quotes/x")).Admitted);
    }

    [Fact]
    public async Task Allocate_For_IsAGrantThatEndsByItself_AndADurationItCannotRead_IsBadUsage()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));

        var unreadable = await RunAsync(proxy, "allocate", "--pool", "daily", "--tenant", "e2e", "--limit", "20", "--for", "soon");
        var granted = await RunAsync(proxy, "allocate", "--pool", "daily", "--tenant", "e2e", "--limit", "20", "--for=2s");
        var during = await RunAsync(proxy, "overrides", "list", "--json");
        var ended = await Poll.UntilAsync(
            "the grant to end",
            async () => (await RunAsync(proxy, "overrides", "list", "--json")).Output,
            output => !output.Contains("daily/e2e", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10));

        Assert.Equal((2, "quotactl: --for must be a duration such as 2h, 30m, 1d, 90s or 00:45:00, got 'soon'\n"), (unreadable.Code, unreadable.Error));
        Assert.Equal(0, granted.Code);
        Assert.Matches(@"^daily/e2e: limit 20 in force in every replica until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n", granted.Output);
        Assert.Contains("\"expiresAt\"", during.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("daily/e2e", ended, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("reopen")]
    [InlineData("pool reopen")]
    public async Task Reopen_EndsAVendorClosureThatItsMaxClosureCapped(string verb)
    {
        using var vendor = new VendorServer();
        vendor.AnswersTooManyRequests("Fri, 31 Dec 9999 23:59:59 GMT");
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));
        using var limited = await proxy.GetAsync("e2e-key", "/quotes/x");
        vendor.AnswersOk();
        using var held = await proxy.GetAsync("e2e-key", "/quotes/x");

        var reopen = await RunAsync(proxy, [.. verb.Split(' '), "--pool", "daily"]);

        Assert.Equal(HttpStatusCode.TooManyRequests, held.StatusCode);
        // The default MaxClosure: an hour, not the year 9999.
        Assert.InRange(long.Parse(held.Header("Retry-After"), System.Globalization.CultureInfo.InvariantCulture), 3595, 3600);
        Assert.Equal((0, "daily: open; its requests are decided again\n"), (reopen.Code, reopen.Output));
        Assert.Equal(1, (await proxy.SendAsync("e2e-key", 1, "/quotes/x")).Admitted);
    }

    [Fact]
    public async Task Errors_AreClear_UnknownTenant_Unauthorised_Unreachable_NoLedger_BadUsage()
    {
        using var vendor = new VendorServer();
        await using var proxy = await ProxyInstance.StartAsync(Config(vendor));

        var unknown = await RunAsync(proxy, "allocate", "--pool", "daily", "--tenant", "nobody", "--limit", "5");
        var invalid = await RunAsync(proxy, "allocate", "--pool", "daily", "--tenant", "e2e", "--limit", "300");
        var unauthorised = await RunAsync(["status", "--url", proxy.AdminAddress!.ToString(), "--key", "wrong"]);
        var unreachable = await RunAsync(["status", "--url", $"http://127.0.0.1:{LoopbackPorts.Free()}", "--key", AdminKey]);
        var noLedger = await RunAsync(proxy, "usage", "--from", "2030-01-01", "--to", "2030-01-31");
        var missing = await RunAsync(proxy, "allocate", "--pool", "daily");
        var unknownCommand = await RunAsync(proxy, "frobnicate");

        Assert.Equal((1, "quotactl: 404 No tenant 'nobody' in daily.\n"), (unknown.Code, unknown.Error));
        Assert.Equal(1, invalid.Code);
        Assert.Contains("Quota:Pools:daily:Tenants:e2e:Limit must be ≤ the pool's Limit (250), got 300.", invalid.Error);
        Assert.Equal(4, unauthorised.Code);
        Assert.StartsWith("quotactl: unauthorised: the admin API at", unauthorised.Error);
        Assert.Equal(3, unreachable.Code);
        Assert.StartsWith("quotactl: cannot reach the admin API at http://127.0.0.1:", unreachable.Error);
        Assert.Equal((1, "quotactl: 404 Usage comes from the PostgreSQL ledger; set Quota:Ledger:ConnectionString.\n"), (noLedger.Code, noLedger.Error));
        Assert.Equal((2, "quotactl: missing --tenant\n"), (missing.Code, missing.Error));
        Assert.Equal(2, unknownCommand.Code);
        Assert.StartsWith("quotactl: unknown command 'frobnicate'", unknownCommand.Error);
    }
}
