using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// Every admin API answer, successes and problems alike, is checked against the schema the OpenAPI document
/// declares for its operation and status: types, required and undeclared properties, nulls, dates. A body
/// the document does not describe is an error too.
/// </summary>
[Collection(LedgerCollection.Name)]
public sealed class OpenApiAnswersTests(RedisFixture redis, PostgresFixture postgres)
{
    private const string AdminKey = "openapi-admin-key";

    [Fact]
    public async Task EveryAdminAnswer_MatchesItsSchemaInTheOpenApiDocument()
    {
        using var vendor = new VendorServer();
        var ledger = await postgres.NewDatabaseAsync();
        await using var proxy = await ProxyInstance.StartAsync(new TestProxyConfig(vendor.Url)
            .Pool("daily", 250, "1d", "UTC", ("prod", 225), ("e2e", 2))
            .Set("Quota:Pools:daily:Tenants:prod:Priority", "1")
            .Route("quotes", pool: "daily", cost: 1)
            .ApiKey("e2e-key", "e2e")
            .ApiKey("prod-key", "prod")
            .Redis(redis.ConnectionString, RedisFixture.NewKeyPrefix(), timeout: TimeSpan.FromSeconds(2))
            .Set("Quota:Ledger:ConnectionString", ledger)
            .Admin(LoopbackPorts.Free(), AdminKey));
        await proxy.SendAsync("e2e-key", 3, "/quotes/x");
        Assert.Equal(HttpStatusCode.OK, await proxy.StatusAsync("prod-key", "/quotes/x", ("X-Request-Id", "openapi-request")));
        var document = JsonDocument.Parse(await (await Admin(proxy, HttpMethod.Get, "/admin/v1/openapi.json")).Content.ReadAsStringAsync()).RootElement;
        var today = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

        var calls = new List<(string Path, string Method, HttpResponseMessage Response)>();
        async Task Call(HttpMethod method, string template, string path, object? body = null, string? key = AdminKey) =>
            calls.Add((template, method.Method.ToLowerInvariant(), await Admin(proxy, method, path, body, key)));

        await Call(HttpMethod.Get, "/admin/v1/status", "/admin/v1/status");
        await Call(HttpMethod.Put, "/admin/v1/pools/{pool}/overrides/{tenant}", "/admin/v1/pools/daily/overrides/e2e", new { limit = 5 });
        await Call(HttpMethod.Put, "/admin/v1/pools/{pool}/overrides/{tenant}", "/admin/v1/pools/daily/overrides/e2e", new { limit = 5000 });
        await Call(HttpMethod.Delete, "/admin/v1/pools/{pool}/overrides/{tenant}", "/admin/v1/pools/daily/overrides/e2e");
        await Call(HttpMethod.Post, "/admin/v1/pools/{pool}/reset", "/admin/v1/pools/daily/reset", new { tenant = "e2e" });
        await Call(HttpMethod.Post, "/admin/v1/pools/{pool}/reset", "/admin/v1/pools/nightly/reset", new { });
        await Call(HttpMethod.Post, "/admin/v1/pools/{pool}/reopen", "/admin/v1/pools/daily/reopen");
        await Poll.UntilAsync("the ledger to hold the debits", async () => (await LedgerDrain.ReadAsync(ledger)).Events, events => events >= 3, TimeSpan.FromSeconds(30));
        await Call(HttpMethod.Get, "/admin/v1/usage", $"/admin/v1/usage?from={today}&to={today}");
        await Call(HttpMethod.Get, "/admin/v1/usage", "/admin/v1/usage?from=2030-02-01&to=2030-01-01");
        await Call(HttpMethod.Get, "/admin/v1/usage/requests/{requestId}", "/admin/v1/usage/requests/openapi-request");
        await Call(HttpMethod.Get, "/admin/v1/usage/requests/{requestId}", "/admin/v1/usage/requests/no-such-request");
        await Call(HttpMethod.Get, "/admin/v1/pools/{pool}/timeline", "/admin/v1/pools/daily/timeline");
        await Call(HttpMethod.Get, "/admin/v1/pools/{pool}/timeline", "/admin/v1/pools/nightly/timeline");
        await Call(HttpMethod.Get, "/admin/v1/audit", "/admin/v1/audit");
        await Call(HttpMethod.Post, "/admin/v1/keys", "/admin/v1/keys", new { tenant = "e2e", name = "doc", expiresAt = DateTimeOffset.UtcNow.AddDays(1) });
        await Call(HttpMethod.Post, "/admin/v1/keys", "/admin/v1/keys", new { tenant = "nobody" });
        await Call(HttpMethod.Get, "/admin/v1/keys", "/admin/v1/keys");
        await Call(HttpMethod.Delete, "/admin/v1/keys/{id}", "/admin/v1/keys/key_0000000000000000");
        await Call(HttpMethod.Get, "/admin/v1/status", "/admin/v1/status", key: "wrong");

        var errors = new List<string>();
        foreach (var (path, method, response) in calls)
        {
            var text = await response.Content.ReadAsStringAsync();
            var where = $"{method.ToUpperInvariant()} {path} {(int)response.StatusCode}";
            if (!document.GetProperty("paths").GetProperty(path).GetProperty(method).GetProperty("responses").TryGetProperty(((int)response.StatusCode).ToString(CultureInfo.InvariantCulture), out var declared))
            {
                errors.Add($"{where}: status not in the document");
                continue;
            }

            declared = Resolve(document, declared);
            var mediaType = response.Content.Headers.ContentType?.MediaType;
            if (text.Length == 0)
            {
                continue;
            }

            if (!declared.TryGetProperty("content", out var content) || !content.TryGetProperty(mediaType ?? "", out var media) || !media.TryGetProperty("schema", out var schema))
            {
                errors.Add($"{where}: a {mediaType} body the document does not describe");
                continue;
            }

            Validate(JsonDocument.Parse(text).RootElement, schema, document, where, errors);
        }

        Assert.Equal(19, calls.Count);
        Assert.True(errors.Count == 0, string.Join("\n", errors));
    }

    private static async Task<HttpResponseMessage> Admin(ProxyInstance proxy, HttpMethod method, string path, object? body = null, string? key = AdminKey)
    {
        using var message = new HttpRequestMessage(method, path);
        if (key is not null)
        {
            message.Headers.Add("X-Admin-Key", key);
        }

        if (body is not null)
        {
            message.Content = JsonContent.Create(body);
        }

        return await proxy.Admin!.SendAsync(message);
    }

    private static JsonElement Resolve(JsonElement document, JsonElement node)
    {
        while (node.ValueKind == JsonValueKind.Object && node.TryGetProperty("$ref", out var reference))
        {
            node = reference.GetString()!.TrimStart('#', '/').Split('/').Aggregate(document, (at, part) => at.GetProperty(part));
        }

        return node;
    }

    /// <summary>The part of OpenAPI 3.0's schema language the document uses: type, format, nullable, properties, required, items, allOf, $ref.</summary>
    private static void Validate(JsonElement value, JsonElement schema, JsonElement document, string path, List<string> errors)
    {
        schema = Resolve(document, schema);
        if (schema.TryGetProperty("allOf", out var all))
        {
            var nullable = schema.TryGetProperty("nullable", out var n) && n.GetBoolean();
            if (value.ValueKind == JsonValueKind.Null && nullable)
            {
                return;
            }

            foreach (var part in all.EnumerateArray())
            {
                Validate(value, part, document, path, errors);
            }

            return;
        }

        if (value.ValueKind == JsonValueKind.Null)
        {
            if (!(schema.TryGetProperty("nullable", out var nullable) && nullable.GetBoolean()))
            {
                errors.Add($"{path}: null where the schema has no null");
            }

            return;
        }

        var type = schema.TryGetProperty("type", out var t) ? t.GetString() : null;
        var ok = type switch
        {
            "object" => value.ValueKind == JsonValueKind.Object,
            "array" => value.ValueKind == JsonValueKind.Array,
            "string" => value.ValueKind == JsonValueKind.String,
            "integer" => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out _),
            "number" => value.ValueKind == JsonValueKind.Number,
            "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
            _ => true,
        };
        if (!ok)
        {
            errors.Add($"{path}: {value.ValueKind} where the schema says {type}");
            return;
        }

        if (type == "string" && schema.TryGetProperty("format", out var format) && format.GetString() is "date-time" or "date"
            && !DateTimeOffset.TryParse(value.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.None, out _))
        {
            errors.Add($"{path}: '{value.GetString()}' is no {format.GetString()}");
        }

        if (type == "object" && schema.TryGetProperty("properties", out var properties))
        {
            foreach (var required in schema.TryGetProperty("required", out var r) ? r.EnumerateArray().Select(e => e.GetString()!) : [])
            {
                if (!value.TryGetProperty(required, out _))
                {
                    errors.Add($"{path}: '{required}' is required and missing");
                }
            }

            foreach (var property in value.EnumerateObject())
            {
                if (properties.TryGetProperty(property.Name, out var propertySchema))
                {
                    Validate(property.Value, propertySchema, document, $"{path}.{property.Name}", errors);
                }
                else if (!(schema.TryGetProperty("additionalProperties", out var extra) && extra.ValueKind != JsonValueKind.False))
                {
                    errors.Add($"{path}: '{property.Name}' is not in the schema");
                }
            }
        }

        if (type == "array" && schema.TryGetProperty("items", out var items))
        {
            var i = 0;
            foreach (var item in value.EnumerateArray())
            {
                Validate(item, items, document, $"{path}[{i++}]", errors);
            }
        }
    }
}
