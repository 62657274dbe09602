using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>A Lua script embedded from <c>Redis/Scripts</c>, with its SHA-1 for EVALSHA.</summary>
internal sealed class EmbeddedScript
{
    public EmbeddedScript(string fileName)
    {
        var name = $"QuotaProxy.Enforcement.Redis.Scripts.{fileName}";
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"Embedded script {name} is missing from the build.");
        using var reader = new StreamReader(stream);
        FileName = fileName;
        Source = reader.ReadToEnd();
        Sha1 = SHA1.HashData(Encoding.UTF8.GetBytes(Source));
    }

    public string FileName { get; }

    public string Source { get; }

    /// <summary>SHA-1 of <see cref="Source"/>: the hot path sends EVALSHA with it, so neither side hashes the script per call.</summary>
    public byte[] Sha1 { get; }
}
