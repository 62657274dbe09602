
namespace QuotaProxy.StandIn;

internal static partial class StandInLog
{
    [LoggerMessage(EventId = 9001, Level = LogLevel.Information, Message = "Stand-in vendor listening on {Url}")]
    public static partial void Started(ILogger logger, string url);
}
