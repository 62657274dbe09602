using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace QuotaProxy.Testing;

/// <summary>What a proxy under test logged at <paramref name="minimum"/> (Warning by default) and above, as "Category[EventId]: message" lines (": ExceptionType: its message" after, when one is logged).</summary>
public sealed class CollectedLogs(LogLevel minimum = LogLevel.Warning) : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyList<string> Lines => [.. _lines];

    public ILogger CreateLogger(string categoryName) => new Collector(categoryName, _lines, minimum);

    public void Dispose()
    {
    }

    private sealed class Collector(string category, ConcurrentQueue<string> lines, LogLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                lines.Enqueue(exception is null
                    ? $"{category}[{eventId.Id}]: {formatter(state, exception)}"
                    : $"{category}[{eventId.Id}]: {formatter(state, exception)}: {exception.GetType().Name}: {exception.Message}");
            }
        }
    }
}
