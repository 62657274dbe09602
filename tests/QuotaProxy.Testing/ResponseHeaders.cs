namespace QuotaProxy.Testing;

/// <summary>Reading a response's headers as the tests assert on them.</summary>
public static class ResponseHeaders
{
    /// <summary>Every value of a response (or content) header, joined with commas as it travels; a missing header fails the test.</summary>
    public static string Header(this HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? string.Join(",", values)
            : throw new InvalidOperationException($"The response has no {name} header.");
}
