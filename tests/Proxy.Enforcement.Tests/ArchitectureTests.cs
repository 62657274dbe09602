using System.Text.RegularExpressions;
using QuotaProxy.Testing;

namespace QuotaProxy.Enforcement.Tests;

/// <summary>
/// The layout docs/architecture.md draws, held to the source: folders depend on each other in one direction
/// only, as its table says, and every file holds one type named after it.
/// </summary>
public sealed partial class ArchitectureTests
{
    /// <summary>What each folder of src/Proxy.Enforcement may use; the same table as docs/architecture.md.</summary>
    private static readonly Dictionary<string, string[]> MayUse = new()
    {
        ["Quotas"] = [],
        ["Identity"] = [],
        ["Pricing"] = ["Quotas"],
        ["Observability"] = ["Quotas"],
        ["Configuration"] = ["Quotas", "Identity", "Pricing", "Observability"],
        ["Redis"] = ["Configuration", "Quotas", "Observability"],
        ["Ledger"] = ["Redis", "Configuration", "Quotas", "Observability"],
        ["Monitoring"] = ["Configuration", "Redis", "Quotas", "Observability", "Notifications"],
        ["Outage"] = ["Configuration", "Redis", "Quotas", "Observability"],
        ["Forwarding"] = ["Configuration", "Pricing", "Observability"],
        ["Http"] = ["Configuration", "Identity", "Pricing", "Quotas", "Observability"],
        ["Admin"] = ["Configuration", "Identity", "Ledger", "Quotas", "Observability"],
        ["Notifications"] = ["Configuration", "Quotas", "Observability"],
        ["Leasing"] = ["Configuration", "Quotas", "Observability"],
    };

    private static string Source => Path.Combine(Repository.Root, "src", "Proxy.Enforcement");

    private static IEnumerable<string> Files(string folder) =>
        Directory.EnumerateFiles(Path.Combine(Source, folder), "*.cs", SearchOption.AllDirectories);

    /// <summary>The folders a C# source uses: its <c>using QuotaProxy.Enforcement.X;</c> lines and names qualified as <c>X.Type</c>.</summary>
    internal static HashSet<string> FoldersUsedBy(string code, IEnumerable<string> folders)
    {
        var withoutComments = LineComment().Replace(code, "");
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var folder in folders)
        {
            if (withoutComments.Contains($"using QuotaProxy.Enforcement.{folder};", StringComparison.Ordinal)
                || Regex.IsMatch(withoutComments, $@"(?<![\w.]){folder}\.[A-Z]"))
            {
                used.Add(folder);
            }
        }

        return used;
    }

    [Fact]
    public void EveryFolder_IsInTheTable()
    {
        var folders = Directory.GetDirectories(Source).Select(Path.GetFileName).Where(name => name is not ("bin" or "obj")).Order(StringComparer.Ordinal);

        Assert.Equal(MayUse.Keys.Order(StringComparer.Ordinal), folders);
    }

    [Fact]
    public void Folders_UseOnlyWhatTheTableAllows()
    {
        var breaches = new List<string>();
        foreach (var (folder, allowed) in MayUse)
        {
            foreach (var file in Files(folder))
            {
                var used = FoldersUsedBy(File.ReadAllText(file), MayUse.Keys.Where(other => other != folder));
                breaches.AddRange(used.Except(allowed).Select(other => $"{Path.GetRelativePath(Source, file)} uses {other}"));
            }
        }

        Assert.True(breaches.Count == 0, string.Join(Environment.NewLine, breaches));
    }

    [Fact]
    public void Table_HasNoCircle()
    {
        var visiting = new HashSet<string>();
        var done = new HashSet<string>();
        void Visit(string folder, List<string> path)
        {
            Assert.True(visiting.Add(folder), "circle: " + string.Join(" -> ", path.Append(folder)));
            foreach (var next in MayUse[folder].Where(next => !done.Contains(next)))
            {
                Visit(next, [.. path, folder]);
            }

            visiting.Remove(folder);
            done.Add(folder);
        }

        foreach (var folder in MayUse.Keys)
        {
            Visit(folder, []);
        }

        Assert.Equal(MayUse.Count, done.Count);
    }

    [Fact]
    public void FoldersUsedBy_FindsUsingsAndQualifiedNames_NotComments()
    {
        const string code = "using QuotaProxy.Enforcement.Quotas;\n// Redis.RedisKeys in a comment\nvar x = Ledger.UsageEvent.Parse();\nvar y = Microsoft.Extensions.Configuration.ConfigurationBinder.Bind;";

        Assert.Equal(["Ledger", "Quotas"], FoldersUsedBy(code, ["Quotas", "Redis", "Ledger", "Configuration"]).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void EveryFile_HoldsOneTopLevelType_NamedAfterIt()
    {
        var wrong = new List<string>();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Repository.Root, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(file => !file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && Path.GetFileName(file) != "Program.cs"))
        {
            var types = TopLevelType().Matches(File.ReadAllText(file)).Select(match => match.Groups["name"].Value).ToList();
            if (types.Count != 1 || types[0] != Path.GetFileNameWithoutExtension(file))
            {
                wrong.Add($"{Path.GetRelativePath(Repository.Root, file)}: {string.Join(", ", types)}");
            }
        }

        Assert.True(wrong.Count == 0, string.Join(Environment.NewLine, wrong));
    }

    [GeneratedRegex(@"//.*")]
    private static partial Regex LineComment();

    [GeneratedRegex(@"^(?:public|internal)\s+(?:(?:static|sealed|abstract|readonly|partial)\s+)*(?:class|record(?:\s+struct)?|struct|enum|interface)\s+(?<name>\w+)", RegexOptions.Multiline)]
    private static partial Regex TopLevelType();
}
