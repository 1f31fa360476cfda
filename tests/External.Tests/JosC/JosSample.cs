using System.Text.RegularExpressions;

namespace EptFuzz.External.Tests.JosC;

/// <summary>
/// The jos-c sample (targets/External/samples/jos-c): its bug catalog as BUGS.md lists it, and its
/// builds, made with the sample's own Makefile and the machine's <c>cc</c> (so the test builds
/// exactly what a user builds).
/// </summary>
internal static partial class JosSample
{
    public static string Directory { get; } = Path.Combine(RepositoryRoot.Path, "targets", "External", "samples", "jos-c");

    /// <summary>The catalog's campaigns: a 1 s command timeout, since the hang bug is reduced by replaying it, each replay one timeout long.</summary>
    public static ExternalDetection Detection { get; } = new("jos-c", TimeSpan.FromSeconds(1));

    /// <summary>The bugs of BUGS.md's first table, in its order (the later table lists bugs not found yet).</summary>
    public static IReadOnlyList<string> Bugs { get; } = ReadBugs();

    /// <summary>Builds a make target of the sample (jos-c-test, bug-NAME) and returns the executable's path.</summary>
    public static string Build(string target)
    {
        var (exitCode, output) = Shell.Run("make", $"-s {target}", Directory);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"make {target} in {Directory} failed (exit {exitCode}):\n{output}");
        }

        return Path.Combine(Directory, target);
    }

    private static List<string> ReadBugs()
    {
        var bugs = new List<string>();
        foreach (string line in File.ReadLines(Path.Combine(Directory, "BUGS.md")))
        {
            if (BugRow().Match(line) is { Success: true } m)
            {
                bugs.Add(m.Groups[1].Value);
            }
            else if (bugs.Count > 0 && !line.StartsWith('|'))
            {
                break;
            }
        }

        return bugs.Count > 0 ? bugs : throw new InvalidOperationException("BUGS.md lists no bug");
    }

    [GeneratedRegex("^\\| `([A-Z0-9_]+)` \\|")]
    private static partial Regex BugRow();
}
