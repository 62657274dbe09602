using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace QuotaProxy.Cli;

/// <summary>
/// <c>quotactl</c>, the operator's command line, a verb of the proxy binary: it talks to the admin API
/// (<c>--url</c> or <c>QUOTACTL_URL</c>, <c>--key</c> or <c>QUOTACTL_KEY</c>) and prints what it answered.
/// Exit codes: 0 done, 1 the API refused (unknown tenant, invalid change), 2 bad usage, 3 unreachable, 4 unauthorised.
/// </summary>
public static class Quotactl
{
    public const string Usage = """
        usage: quotactl <command> [options]   (the admin API: --url URL or QUOTACTL_URL, default http://127.0.0.1:9090;
                                                its key: --key KEY or QUOTACTL_KEY)
          status   [--pool P] [--tenant T] [--watch [SECONDS]]   pools and tenants now, with usage bars
          allocate --pool P --tenant T [--limit N] [--allocation N] [--guaranteed N]
                                                   change a tenant in every replica (audited)
          reset    --pool P [--tenant T]           give the current window's credits back
          reopen   --pool P                        end the pool's vendor closure now (audited)
          usage    --from YYYY-MM-DD --to YYYY-MM-DD [--tenant T] [--route R] [--csv]
                                                   billed usage from the ledger
        """;

    private const int Refused = 1, BadUsage = 2, Unreachable = 3, Unauthorised = 4;

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            await output.WriteAsync(Usage);
            return args.Length == 0 ? BadUsage : 0;
        }

        if (!TryParseOptions(args[1..], out var options, out var problem))
        {
            await error.WriteLineAsync($"quotactl: {problem}\n{Usage}");
            return BadUsage;
        }

        var url = options.GetValueOrDefault("url") ?? Environment.GetEnvironmentVariable("QUOTACTL_URL") ?? "http://127.0.0.1:9090";
        var key = options.GetValueOrDefault("key") ?? Environment.GetEnvironmentVariable("QUOTACTL_KEY");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var baseAddress))
        {
            await error.WriteLineAsync($"quotactl: --url '{url}' is not a URL");
            return BadUsage;
        }

        if (string.IsNullOrEmpty(key))
        {
            await error.WriteLineAsync("quotactl: no admin key: pass --key or set QUOTACTL_KEY");
            return Unauthorised;
        }

        using var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(10) };
        client.DefaultRequestHeaders.Add("X-Admin-Key", key);
        var command = new Command(client, options, output, error, url);
        try
        {
            return args[0] switch
            {
                "status" => await command.StatusAsync(cancellationToken),
                "allocate" => await command.AllocateAsync(cancellationToken),
                "reset" => await command.ResetAsync(cancellationToken),
                "reopen" => await command.ReopenAsync(cancellationToken),
                "usage" => await command.UsageAsync(cancellationToken),
                _ => await command.UnknownAsync(args[0]),
            };
        }
        catch (HttpRequestException ex)
        {
            await error.WriteLineAsync($"quotactl: cannot reach the admin API at {url}: {ex.Message}");
            return Unreachable;
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync($"quotactl: the admin API at {url} did not answer within 10 s");
            return Unreachable;
        }
    }

    /// <summary><c>--name value</c> pairs; <c>--csv</c> and a bare <c>--watch</c> are flags.</summary>
    private static bool TryParseOptions(string[] args, out Dictionary<string, string?> options, out string problem)
    {
        options = new Dictionary<string, string?>(StringComparer.Ordinal);
        problem = "";
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || args[i].Length == 2)
            {
                problem = $"unexpected argument '{args[i]}'";
                return false;
            }

            var name = args[i][2..];
            var hasValue = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal);
            if (name is not ("csv" or "watch") && !hasValue)
            {
                problem = $"--{name} needs a value";
                return false;
            }

            options[name] = hasValue ? args[++i] : null;
        }

        return true;
    }

    private sealed class Command(HttpClient client, Dictionary<string, string?> options, TextWriter output, TextWriter error, string url)
    {
        public async Task<int> StatusAsync(CancellationToken cancellationToken)
        {
            var query = Query(("pool", options.GetValueOrDefault("pool")), ("tenant", options.GetValueOrDefault("tenant")));
            if (!options.TryGetValue("watch", out var watch))
            {
                return await StatusOnceAsync(query, cancellationToken);
            }

            if (!TryInt(watch ?? "2", out var seconds) || seconds < 1)
            {
                await error.WriteLineAsync("quotactl: --watch takes a whole number of seconds (at least 1)");
                return BadUsage;
            }

            // Until stopped (Ctrl-C): a stop in the middle of a redraw ends the watch as cleanly as one between two.
            try
            {
                while (!cancellationToken.IsCancellationRequested)
                {
                    await output.WriteAsync("\u001b[H\u001b[2J");
                    var code = await StatusOnceAsync(query, cancellationToken);
                    if (code != 0)
                    {
                        return code;
                    }

                    await Task.Delay(TimeSpan.FromSeconds(seconds), cancellationToken);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
            }

            return 0;
        }

        private async Task<int> StatusOnceAsync(string query, CancellationToken cancellationToken)
        {
            using var response = await client.GetAsync($"/admin/v1/status{query}", cancellationToken);
            if (await FailureAsync(response) is { } code)
            {
                return code;
            }

            await output.WriteAsync(StatusTable.Render((await ReadJsonAsync(response, cancellationToken)).GetProperty("pools").EnumerateArray(), DateTimeOffset.UtcNow));
            return 0;
        }

        public async Task<int> AllocateAsync(CancellationToken cancellationToken)
        {
            if (await RequireAsync("pool", "tenant") is { } missing)
            {
                return missing;
            }

            var body = new Dictionary<string, long>();
            foreach (var field in new[] { "limit", "allocation", "guaranteed" })
            {
                if (options.GetValueOrDefault(field) is { } text)
                {
                    if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
                    {
                        await error.WriteLineAsync($"quotactl: --{field} must be a whole number of credits, got '{text}'");
                        return BadUsage;
                    }

                    body[field] = value;
                }
            }

            if (body.Count == 0)
            {
                await error.WriteLineAsync("quotactl: allocate needs --limit, --allocation or --guaranteed");
                return BadUsage;
            }

            var (pool, tenant) = (options["pool"]!, options["tenant"]!);
            using var response = await client.PutAsJsonAsync($"/admin/v1/pools/{Uri.EscapeDataString(pool)}/overrides/{EscapePath(tenant)}", body, cancellationToken);
            if (await FailureAsync(response) is { } code)
            {
                return code;
            }

            await output.WriteLineAsync($"{pool}/{tenant}: {string.Join(", ", body.Select(pair => $"{pair.Key} {pair.Value}"))} in force in every replica");
            await output.WriteAsync(StatusTable.Render([await ReadJsonAsync(response, cancellationToken)], DateTimeOffset.UtcNow));
            return 0;
        }

        public async Task<int> ResetAsync(CancellationToken cancellationToken)
        {
            if (await RequireAsync("pool") is { } missing)
            {
                return missing;
            }

            var (pool, tenant) = (options["pool"]!, options.GetValueOrDefault("tenant"));
            using var response = await client.PostAsJsonAsync($"/admin/v1/pools/{Uri.EscapeDataString(pool)}/reset", new { tenant }, cancellationToken);
            if (await FailureAsync(response) is { } code)
            {
                return code;
            }

            await output.WriteLineAsync(tenant is null ? $"{pool}: every tenant's credits of this window given back" : $"{pool}/{tenant}: its credits of this window given back");
            return 0;
        }

        public async Task<int> ReopenAsync(CancellationToken cancellationToken)
        {
            if (await RequireAsync("pool") is { } missing)
            {
                return missing;
            }

            var pool = options["pool"]!;
            using var response = await client.PostAsync($"/admin/v1/pools/{Uri.EscapeDataString(pool)}/reopen", content: null, cancellationToken);
            if (await FailureAsync(response) is { } code)
            {
                return code;
            }

            await output.WriteLineAsync($"{pool}: open; its requests are decided again");
            return 0;
        }

        public async Task<int> UsageAsync(CancellationToken cancellationToken)
        {
            if (await RequireAsync("from", "to") is { } missing)
            {
                return missing;
            }

            var csv = options.ContainsKey("csv");
            var query = Query(
                ("from", options["from"]),
                ("to", options["to"]),
                ("tenant", options.GetValueOrDefault("tenant")),
                ("route", options.GetValueOrDefault("route")),
                ("format", csv ? "csv" : null));
            using var response = await client.GetAsync($"/admin/v1/usage{query}", cancellationToken);
            if (await FailureAsync(response) is { } code)
            {
                return code;
            }

            if (csv)
            {
                await output.WriteAsync(await response.Content.ReadAsStringAsync(cancellationToken));
                return 0;
            }

            var rows = (await ReadJsonAsync(response, cancellationToken)).GetProperty("usage").EnumerateArray().ToList();
            var table = new StringBuilder();
            table.AppendLine(CultureInfo.InvariantCulture, $"{"DAY",-10}  {"POOL",-16} {"TENANT",-20} {"ROUTE",-16} {"DEBITED",9} {"REFUNDED",9} {"NET",9}");
            foreach (var row in rows)
            {
                table.AppendLine(CultureInfo.InvariantCulture, $"{row.GetProperty("day").GetString(),-10}  {row.GetProperty("pool").GetString(),-16} {row.GetProperty("tenant").GetString(),-20} {row.GetProperty("route").GetString(),-16} {row.GetProperty("debited").GetInt64(),9} {row.GetProperty("refunded").GetInt64(),9} {row.GetProperty("net").GetInt64(),9}");
            }

            await output.WriteAsync(rows.Count == 0 ? "no usage in that range\n" : table.ToString());
            return 0;
        }

        public async Task<int> UnknownAsync(string name)
        {
            await error.WriteLineAsync($"quotactl: unknown command '{name}'\n{Usage}");
            return BadUsage;
        }

        private async Task<int?> RequireAsync(params string[] names)
        {
            var missing = names.Where(name => options.GetValueOrDefault(name) is null).ToList();
            if (missing.Count == 0)
            {
                return null;
            }

            await error.WriteLineAsync($"quotactl: missing {string.Join(", ", missing.Select(name => "--" + name))}");
            return BadUsage;
        }

        /// <summary>Null for a success; else says what went wrong, in the API's own words, and returns the exit code.</summary>
        private async Task<int?> FailureAsync(HttpResponseMessage response)
        {
            if (response.IsSuccessStatusCode)
            {
                return null;
            }

            if (response.StatusCode == HttpStatusCode.Unauthorized)
            {
                await error.WriteLineAsync($"quotactl: unauthorised: the admin API at {url} refused the key (check --key or QUOTACTL_KEY)");
                return Unauthorised;
            }

            var text = await response.Content.ReadAsStringAsync();
            string detail;
            try
            {
                var problem = JsonDocument.Parse(text).RootElement;
                detail = problem.GetProperty("detail").GetString() ?? problem.GetProperty("title").GetString() ?? text;
                if (problem.TryGetProperty("errors", out var errors))
                {
                    detail = string.Join("\n  ", errors.EnumerateArray().Select(e => e.GetString()).Prepend(problem.GetProperty("title").GetString()));
                }
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                detail = text.Length > 0 ? text : response.ReasonPhrase ?? "";
            }

            await error.WriteLineAsync($"quotactl: {(int)response.StatusCode} {detail}");
            return Refused;
        }

        private static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response, CancellationToken cancellationToken) =>
            (await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken), cancellationToken: cancellationToken)).RootElement;

        private static string Query(params (string Name, string? Value)[] parameters)
        {
            var present = parameters.Where(p => p.Value is not null).Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value!)}").ToList();
            return present.Count == 0 ? "" : "?" + string.Join('&', present);
        }

        private static string EscapePath(string tenant) => string.Join('/', tenant.Split('/').Select(Uri.EscapeDataString));

        private static bool TryInt(string text, out int value) => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}
