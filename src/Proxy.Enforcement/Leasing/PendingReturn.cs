using System.Diagnostics;
using QuotaProxy.Enforcement.Quotas;

namespace QuotaProxy.Enforcement.Leasing;

/// <summary>
/// A block's unspent credits on their way back to the store: applied once by <paramref name="OperationId"/>,
/// sent again until <paramref name="GiveUpTicks"/> (<see cref="Stopwatch"/> time).
/// </summary>
internal sealed record PendingReturn(long Unspent, RouteDecision Grant, string OperationId, long GiveUpTicks);
