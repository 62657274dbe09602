using System.Collections.Frozen;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace QuotaProxy.Enforcement.Admin;

/// <summary>
/// The operator's dashboard at <c>/admin/</c> on the admin port: three static files embedded in the binary
/// (no CDN, nothing fetched from anywhere but this port), served with a strict Content-Security-Policy. The
/// page holds no data: it asks for an admin key, keeps it in the browser's session storage, and reads and
/// changes everything through the documented admin API under <c>/admin/v1</c>.
/// </summary>
internal static class AdminConsole
{
    public const string Path = "/admin";

    /// <summary>Scripts and styles from this port only, no inline code, no frames, no forms posting away.</summary>
    internal const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    private static readonly FrozenDictionary<string, (string ContentType, string Resource)> Files = new Dictionary<string, (string, string)>(StringComparer.Ordinal)
    {
        ["/admin/"] = ("text/html; charset=utf-8", "index.html"),
        ["/admin/app.js"] = ("text/javascript; charset=utf-8", "app.js"),
        ["/admin/app.css"] = ("text/css; charset=utf-8", "app.css"),
    }.ToFrozenDictionary(StringComparer.Ordinal);

    private static readonly FrozenDictionary<string, string> Contents = Files.Values.ToFrozenDictionary(
        file => file.Resource,
        file =>
        {
            using var stream = typeof(AdminConsole).Assembly.GetManifestResourceStream($"QuotaProxy.Enforcement.Admin.Console.{file.Resource}")!;
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        },
        StringComparer.Ordinal);

    public static bool Serves(PathString path) => path == Path || Files.ContainsKey(path.Value ?? "");

    /// <param name="keyHeader">The admin key's header, written into the page for its requests.</param>
    public static Task ServeAsync(HttpContext http, string keyHeader)
    {
        var path = http.Request.Path.Value ?? "";
        if (path == Path)
        {
            http.Response.Redirect("/admin/");
            return Task.CompletedTask;
        }

        var (contentType, resource) = Files[path];
        var headers = http.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.CacheControl = "no-store";
        http.Response.ContentType = contentType;
        var text = Contents[resource];
        return http.Response.WriteAsync(resource == "index.html" ? text.Replace("{{KEY_HEADER}}", System.Net.WebUtility.HtmlEncode(keyHeader), StringComparison.Ordinal) : text);
    }
}
