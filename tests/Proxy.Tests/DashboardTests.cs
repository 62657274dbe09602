using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// The dashboard at <c>/admin/</c> in a real browser (Debian's chromium, driven by Playwright) against the
/// proxy on Redis with the ledger on PostgreSQL, configured as the worked example: it loads with no console
/// error under its Content-Security-Policy, shows what the admin API says, refuses a wrong key clearly, and
/// an allocation changed on the page is in force for the next proxied request. A screenshot is kept.
/// </summary>
[Collection(LedgerCollection.Name)]
public sealed class DashboardTests(RedisFixture redis, PostgresFixture postgres)
{
    private const string AdminKey = "dashboard-admin-key";

    /// <summary>Debian's chromium (scripts/test.sh installs it), or the one <c>QUOTAPROXY_CHROMIUM</c> names.</summary>
    private static string Chromium => Environment.GetEnvironmentVariable("QUOTAPROXY_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    private async Task<(ProxyInstance Proxy, string Ledger)> StartAsync(VendorServer vendor)
    {
        var ledger = await postgres.NewDatabaseAsync();
        var config = new TestProxyConfig(vendor.Url)
            .Pool("vendor-daily", 250, "1d", "UTC", ("prod", 250), ("test", 60), ("dev", 60), ("e2e", 20))
            .Route("downloads", pool: "vendor-daily", cost: 1)
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix())
            .Set("Quota:Ledger:ConnectionString", ledger)
            .Set("Quota:Ledger:PollInterval", "00:00:00.050")
            .Set("Quota:Pools:vendor-daily:Tenants:prod:SoftLimit", "200")
            .Admin(LoopbackPorts.Free(), AdminKey);
        foreach (var (tenant, allocation, guaranteed, priority) in new[] { ("prod", 180, 180, 1), ("test", 30, 10, 2), ("dev", 30, 10, 3), ("e2e", 10, 5, 4) })
        {
            config.ApiKey($"{tenant}-key", tenant)
                .Set($"Quota:Pools:vendor-daily:Tenants:{tenant}:Allocation", $"{allocation}")
                .Set($"Quota:Pools:vendor-daily:Tenants:{tenant}:Guaranteed", $"{guaranteed}")
                .Set($"Quota:Pools:vendor-daily:Tenants:{tenant}:Priority", $"{priority}");
        }

        return (await ProxyInstance.StartAsync(config), ledger);
    }

    [Fact]
    public async Task TheDashboard_ShowsWhatTheAdminApiSays_RefusesAWrongKey_AndAChangeOnThePageIsInForceForTheNextRequest()
    {
        Assert.True(File.Exists(Chromium), $"chromium is not at {Chromium}: scripts/test.sh installs it (apt-get install chromium)");
        using var vendor = new VendorServer();
        var (proxy, ledger) = await StartAsync(vendor);
        await using var _ = proxy;
        foreach (var (key, calls) in new[] { ("prod-key", 40), ("test-key", 12), ("dev-key", 7), ("e2e-key", 3) })
        {
            Assert.Equal(calls, (await proxy.SendAsync(key, calls, "/downloads/file")).Admitted);
        }

        await Poll.UntilAsync("the ledger to hold the 62 debits", async () => (await LedgerDrain.ReadAsync(ledger)).Events, events => events >= 62, TimeSpan.FromSeconds(30));

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true, Args = ["--no-sandbox"] });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 1000 } });
        var problems = new List<string>();
        page.Console += (_, message) => { if (message.Type is "error" or "warning") problems.Add($"console {message.Type}: {message.Text}"); };
        page.PageError += (_, error) => problems.Add($"page error: {error}");
        var outside = new List<string>();
        page.Request += (_, request) => { if (!request.Url.StartsWith(proxy.AdminAddress!.ToString(), StringComparison.Ordinal)) outside.Add(request.Url); };

        // A wrong key: the page says so, and asks again.
        await page.GotoAsync(new Uri(proxy.AdminAddress!, "/admin/").ToString());
        await page.FillAsync("#admin-key", "not-the-key");
        await page.ClickAsync("#sign-in-form button");
        await page.WaitForSelectorAsync("#sign-in-error:has-text('refused (401)')");
        Assert.True(await page.IsVisibleAsync("#sign-in"));

        await page.FillAsync("#admin-key", AdminKey);
        await page.ClickAsync("#sign-in-form button");
        await page.WaitForSelectorAsync("section.pool[data-pool='vendor-daily'] svg.chart polyline");

        // Loaded and drawn with no console message but the wrong key's 401 (the browser reports the refused request).
        Assert.True(problems.Distinct().SequenceEqual(["console error: Failed to load resource: the server responded with a status of 401 (Unauthorized)"]), string.Join("\n", problems));
        problems.Clear();

        // The numbers on the page are the admin API's.
        using var admin = new HttpClient { BaseAddress = proxy.AdminAddress };
        admin.DefaultRequestHeaders.Add("X-Admin-Key", AdminKey);
        var status = (await admin.GetFromJsonAsync<JsonElement>("/admin/v1/status")).GetProperty("pools")[0];
        Assert.Equal($"{status.GetProperty("used").GetInt64()} of 250 used, {status.GetProperty("available").GetInt64()} available", await page.InnerTextAsync("section.pool .pool-used"));
        foreach (var tenant in status.GetProperty("tenants").EnumerateArray())
        {
            var row = $"section.pool tr[data-tenant='{tenant.GetProperty("tenant").GetString()}']";
            Assert.Equal($"{tenant.GetProperty("used").GetInt64()} / {tenant.GetProperty("effectiveLimit").GetInt64()}", await page.InnerTextAsync($"{row} td.used"));
            Assert.Equal($"{tenant.GetProperty("available").GetInt64()}", await page.InnerTextAsync($"{row} td.available"));
        }

        Assert.Equal("prod: 40 of 250 used", await page.GetAttributeAsync("tr[data-tenant='prod'] .bar", "aria-label"));
        Assert.Equal(4, await page.Locator("section.pool svg.chart polyline").CountAsync());
        Assert.Equal(4, await page.Locator("section.pool svg.chart line[stroke-dasharray]").CountAsync());
        var screenshot = Path.Combine(AppContext.BaseDirectory, "artifacts", "dashboard.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await page.ScreenshotAsync(new() { Path = screenshot, FullPage = true });
        if (Environment.GetEnvironmentVariable("QUOTAPROXY_DASHBOARD_SCREENSHOT") is { Length: > 0 } copy)
        {
            File.Copy(screenshot, copy, overwrite: true);
        }

        // test's limit and allocation to 13, through the page: test has used 13, so its next request is refused.
        Assert.Equal(HttpStatusCode.OK, await proxy.StatusAsync("test-key", "/downloads/file"));
        await page.FillAsync("#vendor-daily-test-limit", "13");
        await page.FillAsync("#vendor-daily-test-allocation", "13");
        await page.ClickAsync("tr[data-tenant='test'] form.change button[type=submit]");
        await page.WaitForSelectorAsync("tr[data-tenant='test'] .badge.override");
        Assert.Equal(HttpStatusCode.TooManyRequests, await proxy.StatusAsync("test-key", "/downloads/file"));
        Assert.Equal("13 / 13", await page.InnerTextAsync("tr[data-tenant='test'] td.used"));
        // A change the rules refuse is shown next to the field, and changes nothing.
        await page.FillAsync("#vendor-daily-e2e-limit", "300");
        await page.ClickAsync("tr[data-tenant='e2e'] form.change button[type=submit]");
        await page.WaitForSelectorAsync("tr[data-tenant='e2e'] .error:has-text('must be ≤')");
        Assert.Equal(20, (await admin.GetFromJsonAsync<JsonElement>("/admin/v1/status")).GetProperty("pools")[0].GetProperty("tenants").EnumerateArray().Single(t => t.GetProperty("tenant").GetString() == "e2e").GetProperty("limit").GetInt64());
        // The audit list shows the change made through the page.
        await page.WaitForSelectorAsync("#audit tbody tr:has-text('override')");

        // Live: a request made elsewhere shows by itself, within a refresh.
        Assert.Equal(HttpStatusCode.OK, await proxy.StatusAsync("dev-key", "/downloads/file"));
        await page.WaitForSelectorAsync("tr[data-tenant='dev'] td.used:has-text('8 / 60')", new() { Timeout = 8000 });
        // Drop test's override: back to its configured 60.
        await page.ClickAsync("tr[data-tenant='test'] button:has-text('Drop override')");
        await page.WaitForSelectorAsync("tr[data-tenant='test'] td.used:has-text('13 / 60')");
        Assert.Equal(HttpStatusCode.OK, await proxy.StatusAsync("test-key", "/downloads/file"));
        // Reset e2e, after the page asks first.
        string? asked = null;
        page.Dialog += async (_, dialog) => { asked = dialog.Message; await dialog.AcceptAsync(); };
        await page.ClickAsync("tr[data-tenant='e2e'] button:has-text('Reset')");
        await page.WaitForSelectorAsync("tr[data-tenant='e2e'] td.used:has-text('0 / 20')");
        Assert.Equal("Give back this window's credits of vendor-daily/e2e and every tenant below it?", asked);

        // On a phone: nothing wider than the screen but the tenants' table, which scrolls in its own box.
        await page.SetViewportSizeAsync(390, 844);
        await page.ReloadAsync();
        await page.WaitForSelectorAsync("section.pool svg.chart polyline");
        Assert.True(await page.EvaluateAsync<bool>("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways on a phone");
        await page.ScreenshotAsync(new() { Path = Path.Combine(AppContext.BaseDirectory, "artifacts", "dashboard-phone.png"), FullPage = true });

        // Nothing went wrong in the page's own code: the one message is the browser's note of the refused change (400).
        Assert.Equal(["console error: Failed to load resource: the server responded with a status of 400 (Bad Request)"], problems);
        Assert.Empty(outside);
    }

    [Fact]
    public async Task ThePage_IsServedOnlyOnTheAdminPort_WithAStrictContentSecurityPolicy_AndHoldsNoData()
    {
        using var vendor = new VendorServer();
        var (proxy, _) = await StartAsync(vendor);
        await using var running = proxy;
        using var admin = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = proxy.AdminAddress };

        using var page = await admin.GetAsync("/admin/");
        var html = await page.Content.ReadAsStringAsync();
        using var redirect = await admin.GetAsync("/admin");
        using var onProxyPort = await proxy.Client.GetAsync("/admin/");

        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'", page.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Contains("<meta name=\"admin-key-header\" content=\"X-Admin-Key\">", html, StringComparison.Ordinal);
        Assert.DoesNotContain("vendor-daily", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("http", (await admin.GetStringAsync("/admin/app.js")).Replace("http://www.w3.org/2000/svg", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Equal((HttpStatusCode.Redirect, "/admin/"), (redirect.StatusCode, redirect.Headers.Location!.ToString()));
        Assert.Equal(HttpStatusCode.NotFound, onProxyPort.StatusCode);
    }
}
