namespace QuotaProxy.Enforcement.Quotas;

internal sealed record CalendarWindows(WindowBounds Previous, WindowBounds Current, WindowBounds Next);
