using System.Text.RegularExpressions;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>The Dockerfile without a Docker engine: its base images are pinned to exact versions of the .NET the repository targets.</summary>
public sealed partial class ContainerImageTests
{
    [Fact]
    public void EveryBaseImage_IsPinnedToAnExactVersion_OfTheTargetFramework()
    {
        var lines = File.ReadAllLines(Path.Combine(Repository.Root, "Dockerfile"));
        var arguments = lines.Select(line => ArgLine().Match(line)).Where(match => match.Success).ToDictionary(match => match.Groups[1].Value, match => match.Groups[2].Value);
        var images = lines.Where(line => line.StartsWith("FROM ", StringComparison.Ordinal))
            .Select(line => Reference().Replace(line.Split(' ')[1], match => arguments[match.Groups[1].Value]))
            .ToList();
        Assert.Equal(2, images.Count);
        var framework = Regex.Match(File.ReadAllText(Path.Combine(Repository.Root, "Directory.Build.props")), "<TargetFramework>net(\\d+\\.\\d+)</TargetFramework>").Groups[1].Value;
        Assert.Collection(
            images,
            build => Assert.Matches($"^mcr\\.microsoft\\.com/dotnet/sdk:{Regex.Escape(framework)}\\.\\d+$", build),
            runtime => Assert.Matches($"^mcr\\.microsoft\\.com/dotnet/aspnet:{Regex.Escape(framework)}\\.\\d+$", runtime));
    }

    [GeneratedRegex("^ARG ([A-Z_]+)=(\\S+)$")]
    private static partial Regex ArgLine();

    [GeneratedRegex("\\$\\{([A-Z_]+)\\}")]
    private static partial Regex Reference();
}
