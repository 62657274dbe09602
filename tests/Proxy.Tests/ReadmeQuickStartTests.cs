using System.Diagnostics;
using System.Text.RegularExpressions;
using QuotaProxy.Testing;

namespace QuotaProxy.Tests;

/// <summary>
/// The README's quick start, run as written: its "Try it" and "Operate it" blocks, line by line through
/// bash against the embedded default (the published binary with the demo appsettings.json, as
/// <c>dotnet run --project src/Proxy</c> runs it), each answer checked against the line's own comment.
/// Only the ports differ (free ones, so that a demo proxy already running here neither fails nor passes it).
/// </summary>
public sealed partial class ReadmeQuickStartTests
{
    private static readonly string Dll = Path.Combine(AppContext.BaseDirectory, "QuotaProxy.dll");

    /// <summary>The bash blocks of the README's quick start after the one that starts the proxy: each command with its comment.</summary>
    private static List<(string Command, string Comment)> QuickStartCommands()
    {
        var readme = File.ReadAllLines(Path.Combine(Repository.Root, "README.md"));
        var start = Array.FindIndex(readme, line => line.StartsWith("## Quick start", StringComparison.Ordinal));
        var end = Array.FindIndex(readme, start + 1, line => line.StartsWith("## ", StringComparison.Ordinal));
        var commands = new List<(string Command, string Comment)>();
        var inBlock = false;
        var blocks = 0;
        for (var i = start; i < end; i++)
        {
            if (readme[i].StartsWith("```", StringComparison.Ordinal))
            {
                inBlock = readme[i] == "```bash";
                blocks += inBlock ? 1 : 0;
                continue;
            }

            // The first block is set-up (clone, run, test): the ones after it talk to the running proxy.
            if (!inBlock || blocks < 2 || readme[i].Trim().Length == 0)
            {
                continue;
            }

            var hash = CommentStart().Match(readme[i]);
            var (code, comment) = hash.Success ? (readme[i][..hash.Index].Trim(), readme[i][(hash.Index + hash.Length)..].Trim()) : (readme[i].Trim(), "");
            if (code.Length == 0)
            {
                // A comment on a line of its own says what the command above it answers.
                commands[^1] = (commands[^1].Command, (commands[^1].Comment + " " + comment).Trim());
            }
            else
            {
                commands.Add((code, comment));
            }
        }

        return commands;
    }

    [Fact]
    public async Task TryItAndOperateIt_AnswerAsTheirCommentsSay()
    {
        var commands = QuickStartCommands();
        Assert.True(commands.Count >= 8, $"the quick start's commands were not found ({commands.Count})");
        var (proxyPort, adminPort, vendorPort) = (LoopbackPorts.Free(), LoopbackPorts.Free(), LoopbackPorts.Free());
        var start = new ProcessStartInfo("dotnet")
        {
            // The binary's own directory: its appsettings.json is the embedded default.
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            ArgumentList =
            {
                Dll, $"--Urls=http://127.0.0.1:{proxyPort}", $"--Quota:Admin:Url=http://127.0.0.1:{adminPort}",
                $"--StandInVendor:Url=http://127.0.0.1:{vendorPort}", $"--ReverseProxy:Clusters:vendor:Destinations:stand-in:Address=http://127.0.0.1:{vendorPort}/",
            },
        };
        // The demo pool's window is a minute: the sequence must not straddle its turn.
        var second = DateTime.UtcNow.Second;
        if (second > 40)
        {
            await Task.Delay(TimeSpan.FromSeconds(61 - second));
        }

        using var proxy = Process.Start(start)!;
        _ = proxy.StandardOutput.ReadToEndAsync();
        _ = proxy.StandardError.ReadToEndAsync();
        try
        {
            await LoopbackPorts.WaitUntilAsync(async () => await LoopbackPorts.IsListeningAsync(proxyPort) && await LoopbackPorts.IsListeningAsync(adminPort), true, "the demo proxy", 30);
            foreach (var (command, comment) in commands)
            {
                var (exitCode, output) = await BashAsync(
                    command.Replace("localhost:8080", $"127.0.0.1:{proxyPort}", StringComparison.Ordinal)
                        .Replace("dotnet run --no-build --project src/Proxy --", $"dotnet {Dll}", StringComparison.Ordinal),
                    $"http://127.0.0.1:{adminPort}");
                Assert.True(exitCode == 0, $"{command}\n exited {exitCode}:\n{output}");
                Check(command, comment, output);
            }
        }
        finally
        {
            proxy.Kill(entireProcessTree: true);
            await proxy.WaitForExitAsync();
        }
    }

    /// <summary>What a comment promises: the statuses it names, in order, or the text it quotes; else some output.</summary>
    private static void Check(string command, string comment, string output)
    {
        var statuses = Status().Matches(comment).Select(m => m.Value).ToList();
        if (command.Contains("%{http_code}", StringComparison.Ordinal))
        {
            Assert.True(statuses.SequenceEqual(output.Split('\n', StringSplitOptions.RemoveEmptyEntries)), $"{command}\n  said: {output}\n  README: {comment}");
        }
        else if (command.StartsWith("curl -i", StringComparison.Ordinal))
        {
            Assert.True(statuses.Count > 0 && output.StartsWith($"HTTP/1.1 {statuses[0]} ", StringComparison.Ordinal), $"{command}\n  said: {output}\n  README: {comment}");
            foreach (var header in HeaderPromise().Matches(comment).Select(m => m.Value))
            {
                Assert.True(output.Contains(header, StringComparison.OrdinalIgnoreCase), $"{command}\n  lacks {header}: {output}");
            }
        }
        else if (comment.StartsWith('{'))
        {
            // JSON quoted up to an ellipsis: the answer starts so.
            Assert.StartsWith(comment.Split('…')[0], output, StringComparison.Ordinal);
        }
        else
        {
            Assert.False(string.IsNullOrWhiteSpace(output), $"{command} printed nothing");
        }
    }

    private static async Task<(int ExitCode, string Output)> BashAsync(string command, string adminUrl)
    {
        var start = new ProcessStartInfo("bash") { WorkingDirectory = Repository.Root, RedirectStandardOutput = true, RedirectStandardError = true, ArgumentList = { "-c", command } };
        start.Environment["QUOTACTL_URL"] = adminUrl;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return (process.ExitCode, (await output).Replace("\r", "", StringComparison.Ordinal) + await error);
    }

    /// <summary>A shell comment: a # after whitespace (not the # of a URL fragment or of %{…}).</summary>
    [GeneratedRegex(@"\s#\s")]
    private static partial Regex CommentStart();

    [GeneratedRegex(@"\b[1-5]\d\d\b")]
    private static partial Regex Status();

    /// <summary>A header a comment promises, by name and value: <c>X-RateLimit-Remaining: 3</c>.</summary>
    [GeneratedRegex(@"X-[A-Za-z-]+: \S+")]
    private static partial Regex HeaderPromise();
}
