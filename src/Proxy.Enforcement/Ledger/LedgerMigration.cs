namespace QuotaProxy.Enforcement.Ledger;

/// <summary>
/// The ledger's schema brought up to date once per process, before anything in it reads or writes the
/// ledger: the flusher starts it, and an admin change or a usage query that comes first (a fresh database, an
/// operator quick off the mark) waits for the same migration rather than meeting a table that is not there
/// yet. A migration that failed (PostgreSQL away) is tried again by the next caller.
/// </summary>
internal sealed class LedgerMigration(string connectionString)
{
    private readonly Lock _gate = new();
    private Task? _migration;

    public Task EnsureAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_migration is null || _migration.IsFaulted || _migration.IsCanceled)
            {
                // Not the caller's token: one caller giving up must not cancel the migration the others wait for.
                _migration = LedgerSchema.MigrateAsync(connectionString, CancellationToken.None);
            }

            return _migration.WaitAsync(cancellationToken);
        }
    }
}
