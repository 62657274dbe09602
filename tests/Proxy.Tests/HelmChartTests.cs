using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using QuotaProxy.Enforcement.Configuration;
using QuotaProxy.Testing;
using YamlDotNet.RepresentationModel;

namespace QuotaProxy.Tests;

/// <summary>
/// charts/quota-proxy without a helm binary: its YAML parses, every value is documented and used values
/// exist, the config it renders binds to the proxy's options (no unknown key) and passes the startup
/// rules with the secrets the Deployment provides, and it carries the repository's alert rules.
/// </summary>
public sealed partial class HelmChartTests
{
    private static readonly string Chart = Path.Combine(Repository.Root, "charts", "quota-proxy");

    private static YamlMappingNode Load(string path)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(path);
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static YamlMappingNode Values => Load(Path.Combine(Chart, "values.yaml"));

    /// <summary>A YAML mapping as configuration keys, the way the proxy reads the same settings from JSON.</summary>
    private static IEnumerable<KeyValuePair<string, string?>> Flatten(YamlNode node, string prefix)
    {
        switch (node)
        {
            case YamlMappingNode mapping:
                foreach (var (key, value) in mapping.Children)
                {
                    foreach (var pair in Flatten(value, prefix.Length == 0 ? ((YamlScalarNode)key).Value! : $"{prefix}:{((YamlScalarNode)key).Value}"))
                    {
                        yield return pair;
                    }
                }

                break;
            case YamlSequenceNode sequence:
                for (var i = 0; i < sequence.Children.Count; i++)
                {
                    foreach (var pair in Flatten(sequence.Children[i], $"{prefix}:{i}"))
                    {
                        yield return pair;
                    }
                }

                break;
            case YamlScalarNode scalar:
                yield return new(prefix, scalar.Value);
                break;
        }
    }

    [Fact]
    public void ChartAndValues_ParseAsYaml_AndEveryValueOutsideTheProxysOwnConfigIsDocumented()
    {
        var chart = Load(Path.Combine(Chart, "Chart.yaml"));
        Assert.Equal(("v2", "quota-proxy"), (((YamlScalarNode)chart["apiVersion"]).Value, ((YamlScalarNode)chart["name"]).Value));

        // A key is documented by a comment right above it, or by its parent's; every leaf must be.
        var lines = File.ReadAllLines(Path.Combine(Chart, "values.yaml"));
        var documented = new Stack<(int Indent, bool Documented)>();
        var undocumented = new List<string>();
        for (var i = 0; i < lines.Length; i++)
        {
            var match = KeyLine().Match(lines[i]);
            if (!match.Success)
            {
                continue;
            }

            var indent = match.Groups["indent"].Length;
            while (documented.Count > 0 && documented.Peek().Indent >= indent)
            {
                documented.Pop();
            }

            var above = lines[..i].LastOrDefault(line => line.Trim().Length > 0)?.Trim() ?? "";
            var isDocumented = above.StartsWith('#') || (documented.Count > 0 && documented.Peek().Documented) || match.Groups["item"].Success;
            var leaf = match.Groups["value"].Value.Trim().Length > 0;
            if (leaf && !isDocumented)
            {
                undocumented.Add($"line {i + 1}: {lines[i].Trim()}");
            }

            documented.Push((indent, isDocumented));
        }

        Assert.Empty(undocumented);
        Assert.True(Values.Children.ContainsKey("config"));
    }

    [Fact]
    public void TheChartsAlertRules_AreTheRepositorysRules()
    {
        Assert.Equal(
            File.ReadAllText(Path.Combine(Repository.Root, "config", "prometheus", "quota-proxy.rules.yml")),
            File.ReadAllText(Path.Combine(Chart, "files", "quota-proxy.rules.yml")));
    }

    [Fact]
    public void RenderedConfig_BindsToTheProxysOptionsWithNoUnknownKey_AndPassesTheStartupRulesWithTheDeploymentsSecrets()
    {
        var values = Flatten(Values["config"], "").ToDictionary();
        // What the Deployment's env sets, as its template does, with stand-in secret values.
        var deployment = File.ReadAllText(Path.Combine(Chart, "templates", "deployment.yaml"));
        Assert.Equal(
            ["Quota__Admin__Keys__{{ $i }}__Name", "Quota__Admin__Keys__{{ $i }}__Sha256", "Quota__Identity__ApiKeys__{{ $i }}__Sha256", "Quota__Identity__ApiKeys__{{ $i }}__Tenant", "Quota__Ledger__ConnectionString", "Quota__Store__Redis"],
            EnvName().Matches(deployment).Select(m => m.Groups[1].Value).Order());
        values["Quota:Store:Redis"] = "redis:6379";
        var secrets = Values["secrets"];
        if (((YamlScalarNode)secrets["ledger"]["name"]).Value is { Length: > 0 })
        {
            values["Quota:Ledger:ConnectionString"] = "Host=db;Username=quotaproxy;Database=quotaproxy";
        }

        var adminKeys = ((YamlSequenceNode)secrets["adminKeys"]).Children;
        for (var i = 0; i < adminKeys.Count; i++)
        {
            values[$"Quota:Admin:Keys:{i}:Name"] = ((YamlScalarNode)adminKeys[i]["name"]).Value;
            values[$"Quota:Admin:Keys:{i}:Sha256"] = new string('a', 64);
        }

        var apiKeys = ((YamlSequenceNode)secrets["apiKeys"]).Children;
        for (var i = 0; i < apiKeys.Count; i++)
        {
            values[$"Quota:Identity:ApiKeys:{i}:Tenant"] = ((YamlScalarNode)apiKeys[i]["tenant"]).Value;
            values[$"Quota:Identity:ApiKeys:{i}:Sha256"] = new string((char)('a' + i), 64);
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var options = configuration.GetSection(QuotaOptions.SectionName).Get<QuotaOptions>(binder => binder.ErrorOnUnknownConfiguration = true)!;
        var vendorCredentials = Values["secrets"]["vendorCredentials"].AllNodes.OfType<YamlMappingNode>().Select(m => ((YamlScalarNode)m["env"]).Value).ToHashSet();
        var errors = QuotaOptionsValidator.Validate(
            options, configuration.GetSection(QuotaOptionsValidator.RoutesSection), name => vendorCredentials.Contains(name) ? "stand-in" : null);

        Assert.True(errors.Count == 0, string.Join("\n", errors));
        Assert.Equal(StoreKind.Redis, options.Store.Kind);
        Assert.Equal("ops", options.Admin.Keys.Single().Name);
        Assert.Equal(["prod", "test"], options.Identity.ApiKeys.Select(k => k.Tenant));
    }

    [Fact]
    public void Templates_AreBalanced_UseOnlyValuesThatExist_AndMakeEveryResourceTheIssueNames()
    {
        var values = Flatten(Values, "").Select(pair => pair.Key).ToList();
        var kinds = new List<string>();
        foreach (var template in Directory.GetFiles(Path.Combine(Chart, "templates"), "*.yaml"))
        {
            var text = File.ReadAllText(template);
            var name = Path.GetFileName(template);
            Assert.True(Regex.Count(text, @"\{\{") == Regex.Count(text, @"\}\}"), $"{name}: unbalanced {{{{ }}}}");
            Assert.True(Regex.Count(text, @"\{\{-? (if|with|range) ") == Regex.Count(text, @"\{\{-? end"), $"{name}: an if, with or range without its end");
            foreach (Match used in ValuesPath().Matches(text))
            {
                var path = used.Groups[1].Value.Replace('.', ':');
                Assert.True(values.Any(key => key == path || key.StartsWith(path + ":", StringComparison.Ordinal)) || IsEmptyValue(path), $"{name}: .Values.{used.Groups[1].Value} is not in values.yaml");
            }

            kinds.AddRange(KindLine().Matches(text).Select(m => m.Groups[1].Value));
        }

        Assert.Equal(
            ["ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget", "PrometheusRule", "Service", "Service", "ServiceMonitor"],
            kinds.Order());
    }

    [Fact]
    public void TheAdminPort_IsOnAServiceOfItsOwn_AndTheNetworkPolicyAdmitsItOnlyFromAdminFrom_AndTheImageMustBeNamed()
    {
        string Template(string name) => File.ReadAllText(Path.Combine(Chart, "templates", name));

        Assert.DoesNotContain("admin", Template("service.yaml"), StringComparison.Ordinal);
        Assert.Contains("-admin", Template("service-admin.yaml"), StringComparison.Ordinal);
        Assert.Contains("type: ClusterIP", Template("service-admin.yaml"), StringComparison.Ordinal);
        var policy = Template("networkpolicy.yaml");
        // The admin rule names its peers unconditionally: an empty list would admit no one, never everyone.
        Assert.Matches(@"- ports:\n\s+- port: admin\n\s+from:\n\s+\{\{- toYaml \.Values\.networkPolicy\.adminFrom", policy);
        var adminFrom = (YamlSequenceNode)((YamlMappingNode)Values.Children[new YamlScalarNode("networkPolicy")]).Children[new YamlScalarNode("adminFrom")];
        Assert.Single(adminFrom.Children);
        Assert.Equal("", ((YamlScalarNode)((YamlMappingNode)Values.Children[new YamlScalarNode("image")]).Children[new YamlScalarNode("repository")]).Value);
        Assert.Contains("{{ required \"image.repository is required", Template("deployment.yaml"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("servicemonitor.yaml", "serviceMonitor", "ServiceMonitor")]
    [InlineData("prometheusrule.yaml", "prometheusRule", "PrometheusRule")]
    public void PrometheusOperatorResources_RenderOnlyWhereTheirCrdExists_OrWhenForced(string file, string key, string kind)
    {
        var text = File.ReadAllText(Path.Combine(Chart, "templates", file));
        var firstDirective = text.Split('\n').First(line => line.StartsWith("{{- if", StringComparison.Ordinal));

        // The whole resource sits inside this one condition: enabled, and the CRD known to the cluster or forced.
        Assert.Equal($"{{{{- if and .Values.{key}.enabled (or .Values.{key}.force (.Capabilities.APIVersions.Has \"monitoring.coreos.com/v1/{kind}\")) }}}}", firstDirective);
        Assert.EndsWith("{{- end }}", text.TrimEnd());
        Assert.Equal("false", ((YamlScalarNode)((YamlMappingNode)Values.Children[new YamlScalarNode(key)]).Children[new YamlScalarNode("force")]).Value);
    }

    /// <summary>Values whose default is an empty map, list or string have no flattened key, yet exist.</summary>
    private static bool IsEmptyValue(string path)
    {
        YamlNode node = Values;
        foreach (var part in path.Split(':'))
        {
            if (node is not YamlMappingNode mapping || !mapping.Children.TryGetValue(new YamlScalarNode(part), out var child))
            {
                return false;
            }

            node = child;
        }

        return true;
    }

    [GeneratedRegex(@"^(?<indent>\s*)(?<item>- )?(?<key>[A-Za-z][\w.{}*/-]*):(?<value>.*)$")]
    private static partial Regex KeyLine();

    [GeneratedRegex(@"- name: (Quota__[\w{}$ ]+)")]
    private static partial Regex EnvName();

    [GeneratedRegex(@"\.Values\.([A-Za-z][\w.]*[\w])")]
    private static partial Regex ValuesPath();

    [GeneratedRegex(@"(?m)^kind: (\w+)")]
    private static partial Regex KindLine();
}
