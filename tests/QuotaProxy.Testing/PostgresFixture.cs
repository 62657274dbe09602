using Npgsql;
using Testcontainers.PostgreSql;
using Xunit;

namespace QuotaProxy.Testing;

/// <summary>
/// One real PostgreSQL for a test collection. <c>QUOTAPROXY_TEST_POSTGRES</c> names one (an Npgsql
/// connection string whose user may create databases); unset, a Testcontainers PostgreSQL where a Docker
/// engine answers, else a local server started by <see cref="LocalPostgresServer"/>. Tests isolate
/// themselves with a database each (<see cref="NewDatabaseAsync"/>).
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    public const string EnvironmentVariable = "QUOTAPROXY_TEST_POSTGRES";

    private LocalPostgresServer? _local;
    private PostgreSqlContainer? _container;

    /// <summary>The server's administrative connection string.</summary>
    public string ConnectionString { get; private set; } = "";

    public string Source { get; private set; } = "";

    /// <summary>The local server, when the fixture started one (outage tests stop and start it); else null.</summary>
    public LocalPostgresServer? Local => _local;

    public async Task InitializeAsync()
    {
        if (Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } configured)
        {
            ConnectionString = configured;
            Source = EnvironmentVariable;
        }
        else if (DockerEngine.Answers())
        {
            _container = new PostgreSqlBuilder("postgres:15-alpine").Build();
            await _container.StartAsync();
            ConnectionString = _container.GetConnectionString();
            Source = "testcontainers";
        }
        else
        {
            _local = await LocalPostgresServer.StartAsync();
            ConnectionString = _local.ConnectionString;
            Source = "local postgres";
        }
    }

    /// <summary>Creates an empty database for one test and returns its connection string.</summary>
    public async Task<string> NewDatabaseAsync()
    {
        var name = $"qp_test_{Guid.NewGuid():N}";
        await using (var connection = new NpgsqlConnection(ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await command.ExecuteNonQueryAsync();
        }

        return new NpgsqlConnectionStringBuilder(ConnectionString) { Database = name }.ConnectionString;
    }

    public async Task DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }

        if (_local is not null)
        {
            await _local.DisposeAsync();
        }
    }
}
