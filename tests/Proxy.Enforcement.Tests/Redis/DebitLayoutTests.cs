using System.Reflection;
using System.Text.RegularExpressions;
using QuotaProxy.Enforcement.Quotas;
using QuotaProxy.Enforcement.Redis;

namespace QuotaProxy.Enforcement.Tests.Redis;

/// <summary>
/// The records C# and Lua exchange are named once, in <see cref="DebitLayout"/>, and the scripts declare the
/// same names as locals: these tests hold every script to the C# values, so that a field moved on one side
/// only fails here rather than in a decision.
/// </summary>
public sealed partial class DebitLayoutTests
{
    /// <summary>Every named integer the C# side defines for the scripts, by its Lua name (<c>NodeLimit</c> is <c>NODE_LIMIT</c>).</summary>
    private static Dictionary<string, long> CSharpNames()
    {
        var names = typeof(DebitLayout).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(field => field.IsLiteral)
            .ToDictionary(field => LuaName(field.Name), field => Convert.ToInt64(field.GetRawConstantValue(), System.Globalization.CultureInfo.InvariantCulture));
        foreach (var limitedBy in Enum.GetValues<QuotaLimitedBy>())
        {
            names.Add(LuaName(limitedBy.ToString()), (long)limitedBy);
        }

        return names;
    }

    private static string LuaName(string pascal) => UpperSnake().Replace(pascal, "$1_$2").ToUpperInvariant();

    /// <summary>The constants a Lua source declares: <c>local A, B = 1, 2</c> where every name is upper case and every value an integer.</summary>
    internal static Dictionary<string, long> LuaConstants(string source)
    {
        var constants = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (Match match in LuaConstant().Matches(source))
        {
            var names = match.Groups["names"].Value.Split(',', StringSplitOptions.TrimEntries);
            var values = match.Groups["values"].Value.Split(',', StringSplitOptions.TrimEntries);
            Assert.True(names.Length == values.Length, $"'{match.Value}' names {names.Length} constants and gives {values.Length} values");
            for (var i = 0; i < names.Length; i++)
            {
                constants.Add(names[i], long.Parse(values[i], System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return constants;
    }

    /// <summary>Each constant of <paramref name="source"/> that the C# side names with another value, or does not name at all.</summary>
    internal static List<string> Disagreements(string source)
    {
        var csharp = CSharpNames();
        return [.. LuaConstants(source).Where(lua => !csharp.TryGetValue(lua.Key, out var value) || value != lua.Value)
            .Select(lua => csharp.TryGetValue(lua.Key, out var value) ? $"{lua.Key} is {lua.Value} in Lua, {value} in C#" : $"{lua.Key} is not named in C#")];
    }

    public static TheoryData<string> Scripts() => ["debit.lua", "adjust.lua", "close.lua"];

    [Theory]
    [MemberData(nameof(Scripts))]
    public void Script_DeclaresOnlyTheCSharpLayoutsValues(string file)
    {
        var source = new EmbeddedScript(file).Source;

        Assert.NotEmpty(LuaConstants(source));
        Assert.Empty(Disagreements(source));
    }

    [Fact]
    public void DebitScript_NamesEveryPartOfTheLayoutItExchanges()
    {
        var declared = LuaConstants(DebitScript.Script.Source).Keys;
        // adjust.lua's own header is the only part debit.lua does not take.
        string[] adjustOnly = ["ADJUST_OPERATION", "ADJUST_DEBIT_EVENT", "ADJUST_HEADER_LENGTH", "BLOCK_WINDOW_START", "ADJUST_BLOCK_HEADER_LENGTH", "OPERATION_TTL_MS"];

        var missing = CSharpNames().Keys.Except(adjustOnly).Except(declared).ToList();

        Assert.True(missing.Count == 0, "debit.lua does not declare " + string.Join(", ", missing));
    }

    [Fact]
    public void AdjustScript_ReadsTheRecordsWithTheLayoutItDeclares()
    {
        var declared = LuaConstants(AdjustScript.Script.Source);

        Assert.Equal(DebitLayout.AdjustHeaderLength, declared["ADJUST_HEADER_LENGTH"]);
        Assert.Equal(DebitLayout.TenantRecordLength, declared["TENANT_RECORD_LENGTH"]);
        Assert.Equal(DebitLayout.PoolRecordLength, declared["POOL_RECORD_LENGTH"]);
    }

    [Fact]
    public void Disagreements_AFieldMovedInLuaOnly_IsFound()
    {
        const string moved = "local NODE_USED_FIELD, NODE_LIMIT = 0, 2\nlocal STRAY = 1\n";

        Assert.Equal(["NODE_LIMIT is 2 in Lua, 1 in C#", "STRAY is not named in C#"], Disagreements(moved));
    }

    [GeneratedRegex("([a-z0-9])([A-Z])")]
    private static partial Regex UpperSnake();

    [GeneratedRegex(@"^local (?<names>[A-Z][A-Z0-9_]*(?:\s*,\s*[A-Z][A-Z0-9_]*)*)\s*=\s*(?<values>-?\d+(?:\s*,\s*-?\d+)*)\s*(?:--.*)?$", RegexOptions.Multiline)]
    private static partial Regex LuaConstant();
}
