using System.Text.Json;
using Dapper;
using Microsoft.Extensions.Logging;
using Npgsql;
using QuotaProxy.Enforcement.Observability;

using QuotaProxy.Enforcement.Configuration;

namespace QuotaProxy.Enforcement.Admin;

/// <summary>
/// Records every admin change: always in the log (event 1204), and in the ledger's <c>admin_audit</c> table
/// when a ledger is configured. The change is refused when that table cannot be written: no change goes unrecorded.
/// </summary>
/// <param name="migration">The ledger's schema, waited for before the first record or read.</param>
internal sealed class AdminAudit(ILogger<AdminAudit> logger, NpgsqlDataSource? ledger = null, Ledger.LedgerMigration? migration = null)
{
    public bool Durable => ledger is not null;

    public async Task RecordAsync(string actor, string action, string pool, string? tenant, object? old, object? @new, CancellationToken cancellationToken)
    {
        var oldJson = old is null ? null : JsonSerializer.Serialize(old, OverrideJson.Options);
        var newJson = @new is null ? null : JsonSerializer.Serialize(@new, OverrideJson.Options);
        if (ledger is not null)
        {
            await (migration?.EnsureAsync(cancellationToken) ?? Task.CompletedTask);
            await using var connection = await ledger.OpenConnectionAsync(cancellationToken);
            await connection.ExecuteAsync(new CommandDefinition(
                "INSERT INTO admin_audit (actor, action, pool, tenant, old, new) VALUES (@Actor, @Action, @Pool, @Tenant, @Old::jsonb, @New::jsonb)",
                new { Actor = actor, Action = action, Pool = pool, Tenant = tenant, Old = oldJson, New = newJson },
                cancellationToken: cancellationToken));
        }

        QuotaLog.AdminAction(logger, actor, action, pool, tenant ?? "", oldJson ?? "null", newJson ?? "null");
    }

    public async Task<IReadOnlyList<AuditEntry>> RecentAsync(int limit, CancellationToken cancellationToken)
    {
        if (ledger is null)
        {
            return [];
        }

        await (migration?.EnsureAsync(cancellationToken) ?? Task.CompletedTask);
        await using var connection = await ledger.OpenConnectionAsync(cancellationToken);
        var rows = await connection.QueryAsync<(long Id, DateTime At, string Actor, string Action, string Pool, string? Tenant, string? Old, string? New)>(new CommandDefinition(
            "SELECT id, at, actor, action, pool, tenant, old::text, new::text FROM admin_audit ORDER BY id DESC LIMIT @Limit",
            new { Limit = limit },
            cancellationToken: cancellationToken));
        return [.. rows.Select(r => new AuditEntry(
            r.Id, new DateTimeOffset(DateTime.SpecifyKind(r.At, DateTimeKind.Utc)), r.Actor, r.Action, r.Pool, r.Tenant,
            r.Old is null ? null : JsonDocument.Parse(r.Old).RootElement.Clone(),
            r.New is null ? null : JsonDocument.Parse(r.New).RootElement.Clone()))];
    }
}
