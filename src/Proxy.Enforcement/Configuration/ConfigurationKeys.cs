using System.Collections;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using QuotaProxy.Enforcement.Pricing;

namespace QuotaProxy.Enforcement.Configuration;

/// <summary>
/// Refuses settings the proxy does not have. The configuration binder ignores a key it cannot place, so a
/// tenant's <c>Limt</c> would silently leave it at the pool's limit: every such key is an error instead,
/// with its path and the nearest real name.
/// </summary>
internal static class ConfigurationKeys
{
    /// <summary>The route metadata keys the quota step reads; any other <c>Quota.</c> key is a mistake.</summary>
    private static readonly string[] RouteMetadata = [RouteQuota.PoolKey, RouteQuota.CostKey, RefundPolicy.Key, RouteQuota.CostHeaderKey, RouteQuota.VendorIdempotentKey, RouteQuota.MaxReplaysKey, RouteQuota.ForwardCredentialKey, RouteQuota.MaxCostKey];

    /// <returns>The paths of the values that cannot be bound (of the wrong type), to leave out of the binding.</returns>
    public static HashSet<string> Validate(IConfigurationSection quota, IConfigurationSection routes, List<string> errors)
    {
        var invalid = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        Walk(quota, typeof(QuotaOptions), errors, invalid);
        foreach (var route in routes.GetChildren())
        {
            foreach (var key in route.GetSection("Metadata").GetChildren().Select(entry => entry.Key))
            {
                if (key.StartsWith("Quota.", StringComparison.OrdinalIgnoreCase) && !RouteMetadata.Contains(key, StringComparer.Ordinal))
                {
                    errors.Add($"{route.Path}:Metadata:{key} is not a quota setting{Suggestion(key, RouteMetadata)}");
                }
            }
        }

        return invalid;
    }

    private static void Walk(IConfigurationSection section, Type type, List<string> errors, HashSet<string> invalid)
    {
        if (ElementType(type) is { } element)
        {
            // A dictionary (pools, tenants, upstreams) or a list (keys): every child is one of its elements.
            foreach (var child in section.GetChildren())
            {
                Walk(child, element, errors, invalid);
            }

            return;
        }

        var scalar = Nullable.GetUnderlyingType(type) ?? type;
        if (scalar.IsPrimitive || scalar.IsEnum || scalar == typeof(string) || scalar == typeof(TimeSpan))
        {
            // The binder drops what it cannot convert, and with it the whole pool or tenant holding it.
            // An empty value leaves an optional setting unset, as the binder reads it.
            var optional = Nullable.GetUnderlyingType(type) is not null;
            if (section.Value is { } value && scalar != typeof(string) && !(optional && value.Length == 0) && !Converts(value, scalar))
            {
                errors.Add($"{section.Path} must be {Expected(scalar)}, got '{value}'.");
                invalid.Add(section.Path);
            }

            return;
        }

        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var child in section.GetChildren())
        {
            if (properties.TryGetValue(child.Key, out var property))
            {
                Walk(child, property.PropertyType, errors, invalid);
            }
            else if (child.Key != "//")
            {
                errors.Add($"{child.Path} is not a setting{Suggestion(child.Key, properties.Keys)}");
            }
        }
    }

    private static bool Converts(string value, Type type)
    {
        try
        {
            System.ComponentModel.TypeDescriptor.GetConverter(type).ConvertFromInvariantString(value);
            return true;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or NotSupportedException or OverflowException)
        {
            return false;
        }
    }

    private static string Expected(Type type) =>
        type == typeof(bool) ? "true or false"
        : type == typeof(TimeSpan) ? "a duration such as 00:00:30"
        : type.IsEnum ? $"one of {string.Join(", ", Enum.GetNames(type))}"
        : "a whole number";

    private static Type? ElementType(Type type)
    {
        if (type == typeof(string))
        {
            return null;
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            return type.GetGenericArguments()[1];
        }

        return typeof(IEnumerable).IsAssignableFrom(type) && type.IsGenericType ? type.GetGenericArguments()[0] : null;
    }

    /// <summary><c>; did you mean Limit?</c> when a real name is within two edits, else the names there are.</summary>
    private static string Suggestion(string key, IEnumerable<string> known)
    {
        var names = known.Order(StringComparer.Ordinal).ToList();
        var nearest = names.MinBy(name => Distance(key.ToLowerInvariant(), name.ToLowerInvariant()));
        return nearest is not null && Distance(key.ToLowerInvariant(), nearest.ToLowerInvariant()) <= 2
            ? $"; did you mean {nearest}?"
            : $"; the settings here are {string.Join(", ", names)}.";
    }

    private static int Distance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            previous = current;
        }

        return previous[b.Length];
    }
}
