using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.CommandLine;

namespace QuotaProxy.Cli;

/// <summary>
/// <c>quotactl</c>, the operator's command line, a verb of the proxy binary: it talks to the admin API
/// (<c>--url</c> or <c>QUOTACTL_URL</c>, <c>--key</c> or <c>QUOTACTL_KEY</c>) and prints what it answered.
/// Parsed by System.CommandLine: an unknown command or option is an error (with a suggestion) and nothing is
/// done; every command has <c>--help</c>; <c>--opt=value</c> works; read commands take <c>--json</c>; <c>reset</c>
/// asks first on a terminal unless <c>--yes</c>.
/// Exit codes: 0 done, 1 the API refused (unknown tenant, invalid change) or the operator declined, 2 bad
/// usage, 3 unreachable, 4 unauthorised.
/// </summary>
public static class Quotactl
{
    public const string Usage = """
        usage: quotactl <command> [options]   (the admin API: --url URL or QUOTACTL_URL, default http://127.0.0.1:9090;
                                                its key: --key KEY or QUOTACTL_KEY; quotactl <command> --help for more)
          status   [--pool P] [--tenant T] [--watch [SECONDS]] [--json]   pools and tenants now, with usage bars
          allocate --pool P --tenant T [--limit N] [--allocation N] [--guaranteed N] [--for DURATION]
                                                   change a tenant in every replica (audited); with --for (2h,
                                                   30m, 1d, 00:45:00) the change ends by itself then
          reset    --pool P [--tenant T] [--yes]   give the current window's credits back (asks first on a terminal)
          reopen   --pool P                        end the pool's vendor closure now (audited); also: pool reopen
          usage    --from YYYY-MM-DD --to YYYY-MM-DD [--tenant T] [--route R] [--csv | --json]
                                                   billed usage from the ledger
          overrides list [--pool P] [--json]       the runtime overrides in force
          overrides drop --pool P --tenant T       back to the configured values (audited)
          audit    [--limit N] [--json]            the latest admin changes (from the ledger)
          keys create --tenant T [--name N] [--expires DATE]   issue an API key (printed once)
          keys list [--json]                       the runtime API keys (never the keys)
          keys revoke --id ID [--yes]              revoke one (asks first on a terminal)
        """;

    private const int Refused = 1, BadUsage = 2, Unreachable = 3, Unauthorised = 4;

    /// <param name="input">Where a confirmation is read from; with none (not a terminal), destructive commands do not ask.</param>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default, TextReader? input = null)
    {
        if (args.Length == 0)
        {
            await error.WriteAsync(Usage);
            return BadUsage;
        }

        var root = Commands();
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            await error.WriteLineAsync(Problem(root, parsed, args));
            return BadUsage;
        }

        if (parsed.Action is System.CommandLine.Help.HelpAction || parsed.CommandResult.Command.Subcommands.Count > 0)
        {
            if (parsed.Action is not System.CommandLine.Help.HelpAction)
            {
                await error.WriteAsync(Usage);
                return BadUsage;
            }

            await parsed.InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken);
            return 0;
        }

        // Every option given on the command line, by name: the commands below read them as text.
        var options = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var option in parsed.CommandResult.Command.Options.Concat(root.Options.Where(o => o.Recursive)))
        {
            if (parsed.GetResult(option) is { Implicit: false } result)
            {
                options[option.Name.TrimStart('-')] = result.Tokens.Count > 0 ? result.Tokens[0].Value : null;
            }
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
        var command = new Command(client, options, output, error, url, input);
        try
        {
            var name = parsed.CommandResult.Command.Parents.OfType<System.CommandLine.Command>().FirstOrDefault() is { Name: "keys" or "overrides" or "pool" } group
                ? $"{group.Name} {parsed.CommandResult.Command.Name}"
                : parsed.CommandResult.Command.Name;
            return name switch
            {
                "overrides list" => await command.ListOverridesAsync(cancellationToken),
                "overrides drop" => await command.DropOverrideAsync(cancellationToken),
                "audit" => await command.AuditAsync(cancellationToken),
                "keys create" => await command.CreateKeyAsync(cancellationToken),
                "keys list" => await command.ListKeysAsync(cancellationToken),
                "keys revoke" => await command.RevokeKeyAsync(cancellationToken),
                "status" => await command.StatusAsync(cancellationToken),
                "allocate" => await command.AllocateAsync(cancellationToken),
                "reset" => await command.ResetAsync(cancellationToken),
                "reopen" or "pool reopen" => await command.ReopenAsync(cancellationToken),
                _ => await command.UsageAsync(cancellationToken),
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

    /// <summary>The commands and their options. Required options are checked by the commands, which name every one missing.</summary>
    private static System.CommandLine.Command Commands()
    {
        // Named quotactl (a RootCommand takes the executable's name, and this is a verb of QuotaProxy's).
        var root = new System.CommandLine.Command("quotactl", "The QuotaProxy operator's command line (talks to the admin API).")
        {
            new System.CommandLine.Help.HelpOption { Recursive = true },
            new Option<string>("--url") { Description = "The admin API (default QUOTACTL_URL, else http://127.0.0.1:9090).", Recursive = true },
            new Option<string>("--key") { Description = "The admin key (default QUOTACTL_KEY).", Recursive = true },
        };
        Option<string> Text(string name, string description) => new(name) { Description = description };
        Option<bool> Flag(string name, string description) => new(name) { Description = description, Arity = ArgumentArity.Zero };
        root.Subcommands.Add(new System.CommandLine.Command("status", "Pools and tenants now, with usage bars.")
        {
            Text("--pool", "Only this pool."),
            Text("--tenant", "Only this tenant (a path: org/team)."),
            new Option<string>("--watch") { Description = "Redraw every SECONDS (default 2) until Ctrl-C.", Arity = ArgumentArity.ZeroOrOne, HelpName = "SECONDS" },
            Flag("--json", "The admin API's answer, as JSON."),
        });
        root.Subcommands.Add(new System.CommandLine.Command("allocate", "Change a tenant's limit, allocation or guaranteed credits in every replica (audited).")
        {
            Text("--pool", "The pool (required)."),
            Text("--tenant", "The tenant (required)."),
            Text("--limit", "Credits the tenant may use in a window."),
            Text("--allocation", "Credits it is allocated."),
            Text("--guaranteed", "Credits held for it whatever others use."),
            Text("--for", "A grant that ends by itself after this long (2h, 30m, 1d, 90s or 00:45:00): every replica goes back to the configured values then (audited)."),
        });
        root.Subcommands.Add(new System.CommandLine.Command("reset", "Give the current window's credits back (asks first on a terminal).")
        {
            Text("--pool", "The pool (required)."),
            Text("--tenant", "Only this tenant and those below it; without it, the whole pool."),
            Flag("--yes", "Do not ask."),
        });
        System.CommandLine.Command Reopen() => new("reopen", "End the pool's vendor closure now (audited).") { Text("--pool", "The pool (required).") };
        root.Subcommands.Add(Reopen());
        // The admin API's noun and verb (POST /admin/v1/pools/{pool}/reopen), beside the short form above.
        var pools = new System.CommandLine.Command("pool", "A pool as a whole.");
        pools.Subcommands.Add(Reopen());
        root.Subcommands.Add(pools);
        var overrides = new System.CommandLine.Command("overrides", "Runtime overrides of tenants' limits, allocations and guarantees.");
        overrides.Subcommands.Add(new System.CommandLine.Command("list", "The overrides in force, per pool and tenant.")
        {
            Text("--pool", "Only this pool."),
            Flag("--json", "As JSON."),
        });
        overrides.Subcommands.Add(new System.CommandLine.Command("drop", "Drop a tenant's override: back to the configured values in every replica (audited).")
        {
            Text("--pool", "The pool (required)."),
            Text("--tenant", "The tenant (required)."),
        });
        root.Subcommands.Add(overrides);
        root.Subcommands.Add(new System.CommandLine.Command("audit", "The latest admin changes: who, when, what, before and after (from the ledger).")
        {
            Text("--limit", "How many, newest first (default 20, at most 1000)."),
            Flag("--json", "The admin API's answer, as JSON."),
        });
        var keys = new System.CommandLine.Command("keys", "API keys issued at runtime (beside the configured ones).");
        keys.Subcommands.Add(new System.CommandLine.Command("create", "Issue an API key for a tenant; it is printed once, and only its digest is kept.")
        {
            Text("--tenant", "The tenant it identifies (required)."),
            Text("--name", "What it is for."),
            Text("--expires", "When it stops working (an ISO 8601 date or time)."),
            Flag("--json", "The admin API's answer, as JSON."),
        });
        keys.Subcommands.Add(new System.CommandLine.Command("list", "The runtime API keys: id, tenant, name, created, expires, last used.")
        {
            Flag("--json", "The admin API's answer, as JSON."),
        });
        keys.Subcommands.Add(new System.CommandLine.Command("revoke", "Revoke a key: refused by every replica within a second (asks first on a terminal).")
        {
            Text("--id", "The key's id (required)."),
            Flag("--yes", "Do not ask."),
        });
        root.Subcommands.Add(keys);
        root.Subcommands.Add(new System.CommandLine.Command("usage", "Billed usage from the ledger.")
        {
            Text("--from", "First day, YYYY-MM-DD (required)."),
            Text("--to", "Last day, YYYY-MM-DD (required)."),
            Text("--tenant", "Only this tenant."),
            Text("--route", "Only this route."),
            Flag("--csv", "CSV, as the admin API gives it."),
            Flag("--json", "The admin API's answer, as JSON."),
        });
        return root;
    }

    /// <summary>What is wrong with the command line, with the nearest command or option when a name is mistyped.</summary>
    private static string Problem(System.CommandLine.Command root, ParseResult parsed, string[] args)
    {
        var known = root.Subcommands.Select(c => c.Name).ToList();
        if (!args[0].StartsWith('-') && !known.Contains(args[0]))
        {
            return $"quotactl: unknown command '{args[0]}'{Suggestion(args[0], known)}\n{Usage}";
        }

        var command = parsed.CommandResult.Command;
        var names = command.Options.Concat(root.Options).SelectMany(o => o.Aliases.Prepend(o.Name)).Distinct().ToList();
        var lines = parsed.Errors.Select(e => $"quotactl: {e.Message}").ToList();
        foreach (var token in parsed.UnmatchedTokens.Where(t => t.StartsWith("--", StringComparison.Ordinal)))
        {
            lines.Add($"quotactl: '{token}' is not an option of {command.Name}{Suggestion(token.Split('=')[0], names)}");
        }

        lines.Add($"nothing was done; see 'quotactl {(command == root ? "" : command.Name + " ")}--help'");
        return string.Join('\n', lines.Distinct());
    }

    /// <summary>", did you mean 'x'?" for the closest name within two edits, else nothing.</summary>
    private static string Suggestion(string given, IEnumerable<string> names) =>
        names.Select(name => (Name: name, Distance: Distance(given, name))).Where(c => c.Distance <= 2).OrderBy(c => c.Distance).FirstOrDefault() is { Name: { } near }
            ? $", did you mean '{near}'?"
            : "";

    private static int Distance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var diagonal = row[0];
            row[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }

        return row[b.Length];
    }

    private sealed class Command(HttpClient client, Dictionary<string, string?> options, TextWriter output, TextWriter error, string url, TextReader? input)
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
            var (done, status) = await ReadAsync($"/admin/v1/status{query}", cancellationToken);
            if (done is { } code)
            {
                return code;
            }

            await output.WriteAsync(StatusTable.Render(status.GetProperty("pools").EnumerateArray(), DateTimeOffset.UtcNow));
            return 0;
        }

        public async Task<int> AllocateAsync(CancellationToken cancellationToken)
        {
            if (await RequireAsync("pool", "tenant") is { } missing)
            {
                return missing;
            }

            var body = new Dictionary<string, object>();
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

            DateTimeOffset? until = null;
            if (options.GetValueOrDefault("for") is { } lasting)
            {
                if (Duration(lasting) is not { } span)
                {
                    await error.WriteLineAsync($"quotactl: --for must be a duration such as 2h, 30m, 1d, 90s or 00:45:00, got '{lasting}'");
                    return BadUsage;
                }

                until = DateTimeOffset.UtcNow + span;
                body["expiresAt"] = until.Value;
            }

            var (pool, tenant) = (options["pool"]!, options["tenant"]!);
            using var response = await client.PutAsJsonAsync($"/admin/v1/pools/{Uri.EscapeDataString(pool)}/overrides/{EscapePath(tenant)}", body, cancellationToken);
            if (await FailureAsync(response) is { } code)
            {
                return code;
            }

            var changes = string.Join(", ", body.Where(pair => pair.Key != "expiresAt").Select(pair => $"{pair.Key} {pair.Value}"));
            await output.WriteLineAsync($"{pool}/{tenant}: {changes} in force in every replica{(until is { } end ? $" until {end:yyyy-MM-dd HH:mm:ss} UTC" : "")}");
            await output.WriteAsync(StatusTable.Render([await ReadJsonAsync(response, cancellationToken)], DateTimeOffset.UtcNow));
            return 0;
        }

        /// <summary>2h, 30m, 1d, 90s, or a TimeSpan (00:45:00); positive.</summary>
        internal static TimeSpan? Duration(string text)
        {
            if (text.Length > 1 && long.TryParse(text[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var count) && count > 0)
            {
                return text[^1] switch
                {
                    's' => TimeSpan.FromSeconds(count),
                    'm' => TimeSpan.FromMinutes(count),
                    'h' => TimeSpan.FromHours(count),
                    'd' => TimeSpan.FromDays(count),
                    _ => null,
                };
            }

            return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero ? span : null;
        }

        public async Task<int> ResetAsync(CancellationToken cancellationToken)
        {
            if (await RequireAsync("pool") is { } missing)
            {
                return missing;
            }

            var (pool, tenant) = (options["pool"]!, options.GetValueOrDefault("tenant"));
            if (!await ConfirmedAsync($"Give back this window's credits of {(tenant is null ? $"every tenant of {pool}" : $"{pool}/{tenant} and every tenant below it")}?", "not reset", cancellationToken))
            {
                return Refused;
            }

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
            if (csv && options.ContainsKey("json"))
            {
                await error.WriteLineAsync("quotactl: --csv and --json: choose one");
                return BadUsage;
            }

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

            var usage = await ReadJsonAsync(response, cancellationToken);
            if (options.ContainsKey("json"))
            {
                await output.WriteAsync(JsonSerializer.Serialize(usage, Indented) + "\n");
                return 0;
            }

            var rows = usage.GetProperty("usage").EnumerateArray().ToList();
            var table = new StringBuilder();
            table.AppendLine(CultureInfo.InvariantCulture, $"{"DAY",-10}  {"POOL",-16} {"TENANT",-20} {"ROUTE",-16} {"DEBITED",9} {"REFUNDED",9} {"NET",9}");
            foreach (var row in rows)
            {
                table.AppendLine(CultureInfo.InvariantCulture, $"{row.GetProperty("day").GetString(),-10}  {row.GetProperty("pool").GetString(),-16} {row.GetProperty("tenant").GetString(),-20} {row.GetProperty("route").GetString(),-16} {row.GetProperty("debited").GetInt64(),9} {row.GetProperty("refunded").GetInt64(),9} {row.GetProperty("net").GetInt64(),9}");
            }

            await output.WriteAsync(rows.Count == 0 ? "no usage in that range\n" : table.ToString());
            return 0;
        }

        public async Task<int> ListOverridesAsync(CancellationToken cancellationToken)
        {
            using var response = await client.GetAsync($"/admin/v1/status{Query(("pool", options.GetValueOrDefault("pool")))}", cancellationToken);
            if (await FailureAsync(response) is { } code)
            {
                return code;
            }

            var overrides = (await ReadJsonAsync(response, cancellationToken)).GetProperty("pools").EnumerateArray()
                .SelectMany(pool => pool.GetProperty("tenants").EnumerateArray()
                    .Where(tenant => tenant.TryGetProperty("override", out var o) && o.ValueKind == JsonValueKind.Object)
                    .Select(tenant => tenant.GetProperty("override")))
                .ToList();
            if (options.ContainsKey("json"))
            {
                await output.WriteAsync(JsonSerializer.Serialize(new { overrides }, Indented) + "\n");
                return 0;
            }

            static string Value(JsonElement o, string name) => o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64().ToString(CultureInfo.InvariantCulture) : "-";
            var table = new StringBuilder();
            table.AppendLine(CultureInfo.InvariantCulture, $"{"POOL",-16} {"TENANT",-24} {"LIMIT",9} {"ALLOCATION",11} {"GUARANTEED",11}");
            foreach (var o in overrides)
            {
                table.AppendLine(CultureInfo.InvariantCulture, $"{o.GetProperty("pool").GetString(),-16} {o.GetProperty("tenant").GetString(),-24} {Value(o, "limit"),9} {Value(o, "allocation"),11} {Value(o, "guaranteed"),11}");
            }

            await output.WriteAsync(overrides.Count == 0 ? "no overrides: every tenant has its configured values\n" : table.ToString());
            return 0;
        }

        public async Task<int> DropOverrideAsync(CancellationToken cancellationToken)
        {
            if (await RequireAsync("pool", "tenant") is { } missing)
            {
                return missing;
            }

            var (pool, tenant) = (options["pool"]!, options["tenant"]!);
            using var response = await client.DeleteAsync($"/admin/v1/pools/{Uri.EscapeDataString(pool)}/overrides/{EscapePath(tenant)}", cancellationToken);
            if (await FailureAsync(response) is { } code)
            {
                return code;
            }

            await output.WriteLineAsync($"{pool}/{tenant}: back to its configured values in every replica");
            return 0;
        }

        public async Task<int> AuditAsync(CancellationToken cancellationToken)
        {
            var limit = options.GetValueOrDefault("limit") ?? "20";
            if (!TryInt(limit, out var count) || count < 1)
            {
                await error.WriteLineAsync($"quotactl: --limit must be a whole number of at least 1, got '{limit}'");
                return BadUsage;
            }

            var (done, audit) = await ReadAsync($"/admin/v1/audit?limit={count}", cancellationToken);
            if (done is { } code)
            {
                return code;
            }

            var table = new StringBuilder();
            table.AppendLine(CultureInfo.InvariantCulture, $"{"AT (UTC)",-19}  {"ACTOR",-12} {"ACTION",-12} {"POOL",-16} {"TENANT",-20} CHANGE");
            foreach (var entry in audit.GetProperty("entries").EnumerateArray())
            {
                static string Json(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v.GetRawText() : "-";
                table.AppendLine(CultureInfo.InvariantCulture,
                    $"{entry.GetProperty("at").GetDateTimeOffset().UtcDateTime:yyyy-MM-dd HH:mm:ss}  {entry.GetProperty("actor").GetString(),-12} {entry.GetProperty("action").GetString(),-12} {entry.GetProperty("pool").GetString(),-16} {(entry.TryGetProperty("tenant", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : "-"),-20} {Json(entry, "old")} -> {Json(entry, "new")}");
            }

            await output.WriteAsync(table.ToString());
            return 0;
        }

        public async Task<int> CreateKeyAsync(CancellationToken cancellationToken)
        {
            if (await RequireAsync("tenant") is { } missing)
            {
                return missing;
            }

            DateTimeOffset? expires = null;
            if (options.GetValueOrDefault("expires") is { } text)
            {
                if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
                {
                    await error.WriteLineAsync($"quotactl: --expires must be a date or time (ISO 8601), got '{text}'");
                    return BadUsage;
                }

                expires = at;
            }

            using var response = await client.PostAsJsonAsync("/admin/v1/keys", new { tenant = options["tenant"], name = options.GetValueOrDefault("name"), expiresAt = expires }, cancellationToken);
            if (await FailureAsync(response) is { } code)
            {
                return code;
            }

            var issued = await ReadJsonAsync(response, cancellationToken);
            await output.WriteAsync(options.ContainsKey("json")
                ? JsonSerializer.Serialize(issued, Indented) + "\n"
                : $"{issued.GetProperty("key").GetString()}\n" +
                  $"id {issued.GetProperty("id").GetString()}, tenant {issued.GetProperty("tenant").GetString()}: the key above is shown this once; keep it now\n");
            return 0;
        }

        public async Task<int> ListKeysAsync(CancellationToken cancellationToken)
        {
            var (done, listed) = await ReadAsync("/admin/v1/keys", cancellationToken);
            if (done is { } code)
            {
                return code;
            }

            var table = new StringBuilder();
            table.AppendLine(CultureInfo.InvariantCulture, $"{"ID",-20} {"TENANT",-20} {"NAME",-16} {"CREATED",-20} {"EXPIRES",-20} LAST USED");
            foreach (var key in listed.GetProperty("keys").EnumerateArray())
            {
                static string When(JsonElement value) => value.ValueKind == JsonValueKind.String ? value.GetDateTimeOffset().UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : "-";
                var expires = key.TryGetProperty("expiresAt", out var e) ? When(e) : "-";
                table.AppendLine(CultureInfo.InvariantCulture,
                    $"{key.GetProperty("id").GetString(),-20} {key.GetProperty("tenant").GetString(),-20} {(key.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : "-"),-16} {When(key.GetProperty("createdAt")),-20} {(key.GetProperty("expired").GetBoolean() ? "expired" : expires),-20} {(key.TryGetProperty("lastUsedAt", out var u) ? When(u) : "-")}");
            }

            await output.WriteAsync(table.ToString());
            return 0;
        }

        public async Task<int> RevokeKeyAsync(CancellationToken cancellationToken)
        {
            if (await RequireAsync("id") is { } missing)
            {
                return missing;
            }

            var id = options["id"]!;
            if (!await ConfirmedAsync($"Revoke API key {id}? Requests with it are refused within a second.", "not revoked", cancellationToken))
            {
                return Refused;
            }

            using var response = await client.DeleteAsync($"/admin/v1/keys/{Uri.EscapeDataString(id)}", cancellationToken);
            if (await FailureAsync(response) is { } code)
            {
                return code;
            }

            await output.WriteLineAsync($"{id}: revoked; every replica refuses it within a second");
            return 0;
        }

        /// <summary>
        /// GETs <paramref name="path"/>. Done (with its exit code) when the API refused, or when <c>--json</c> asked
        /// for the answer as it is (printed here); else the answer, for the command to print its way.
        /// </summary>
        private async Task<(int? Done, JsonElement Answer)> ReadAsync(string path, CancellationToken cancellationToken)
        {
            using var response = await client.GetAsync(path, cancellationToken);
            if (await FailureAsync(response) is { } code)
            {
                return (code, default);
            }

            var answer = await ReadJsonAsync(response, cancellationToken);
            if (options.ContainsKey("json"))
            {
                await output.WriteAsync(JsonSerializer.Serialize(answer, Indented) + "\n");
                return (0, answer);
            }

            return (null, answer);
        }

        /// <summary>
        /// A destructive command's question, on a terminal and without <c>--yes</c>: true when the operator
        /// answers y or yes; otherwise says nothing was changed. Piped or scripted (no input), it does not ask.
        /// </summary>
        private async Task<bool> ConfirmedAsync(string question, string declined, CancellationToken cancellationToken)
        {
            if (input is null || options.ContainsKey("yes"))
            {
                return true;
            }

            await output.WriteAsync($"{question} [y/N] ");
            if ((await input.ReadLineAsync(cancellationToken))?.Trim() is { } answer
                && (answer.Equals("y", StringComparison.OrdinalIgnoreCase) || answer.Equals("yes", StringComparison.OrdinalIgnoreCase)))
            {
                return true;
            }

            await error.WriteLineAsync($"quotactl: {declined}; nothing was changed");
            return false;
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

        private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

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
