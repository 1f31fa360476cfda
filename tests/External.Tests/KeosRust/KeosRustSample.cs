using System.Diagnostics;
using System.Text.RegularExpressions;

namespace EptFuzz.External.Tests.KeosRust;

/// <summary>
/// The keos-rust sample (targets/External/samples/keos-rust): its bug catalog as BUGS.md lists it,
/// and its builds, made with the machine's <c>cargo</c> (offline, the committed Cargo.lock) into a
/// directory of the test's own, never into the source tree.
/// </summary>
internal static partial class KeosRustSample
{
    public static string Directory { get; } = Path.Combine(RepositoryRoot.Path, "targets", "External", "samples", "keos-rust");

    /// <summary>The catalog's campaigns, with the default command timeout.</summary>
    public static ExternalDetection Detection { get; } = new("keos-rust", null);

    /// <summary>The bugs of BUGS.md's table, in its order, with whether eptfuzz can reach them.</summary>
    public static IReadOnlyList<(string Name, bool Reachable)> Bugs { get; } = ReadBugs();

    /// <summary>The <c>bug-*</c> features Cargo.toml declares.</summary>
    public static IReadOnlyList<string> Features() =>
        [.. File.ReadLines(Path.Combine(Directory, "Cargo.toml")).Select(l => FeatureLine().Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value)];

    /// <summary>
    /// Builds the sample (release, offline, locked) with one bug feature or none into
    /// <paramref name="targetDir"/> and copies the executable to <paramref name="targetDir"/>/bin/NAME.
    /// Builds share the target directory, so the SDK is compiled once.
    /// </summary>
    public static string Build(string targetDir, string? bug)
    {
        var arguments = new List<string> { "build", "--release", "--offline", "--locked", "--quiet" };
        if (bug is not null)
        {
            arguments.AddRange(["--features", bug]);
        }

        var start = new ProcessStartInfo("cargo", arguments)
        {
            WorkingDirectory = Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["CARGO_TARGET_DIR"] = targetDir;
        start.Environment["EPTFUZZ_TEST_BUILD"] = "1";
        using var cargo = Process.Start(start) ?? throw new InvalidOperationException("cargo did not start");
        var stdout = cargo.StandardOutput.ReadToEndAsync();
        string stderr = cargo.StandardError.ReadToEnd();
        cargo.WaitForExit();
        if (cargo.ExitCode != 0)
        {
            throw new InvalidOperationException($"cargo {string.Join(' ', arguments)} in {Directory} failed (exit {cargo.ExitCode}):\n{stdout.Result}{stderr}");
        }

        string bin = Path.Combine(targetDir, "bin");
        System.IO.Directory.CreateDirectory(bin);
        string copy = Path.Combine(bin, bug ?? "keos-rust-ept");
        File.Copy(Path.Combine(targetDir, "release", "keos-rust-ept"), copy, overwrite: true);
        return copy;
    }

    private static List<(string, bool)> ReadBugs()
    {
        var bugs = new List<(string, bool)>();
        foreach (string line in File.ReadLines(Path.Combine(Directory, "BUGS.md")))
        {
            if (BugRow().Match(line) is { Success: true } m)
            {
                bugs.Add((m.Groups[1].Value, !line.Contains("not reachable", StringComparison.Ordinal)));
            }
        }

        return bugs.Count > 0 ? bugs : throw new InvalidOperationException("BUGS.md lists no bug");
    }

    [GeneratedRegex("^\\| `(bug-[a-z0-9-]+)` \\|")]
    private static partial Regex BugRow();

    [GeneratedRegex("^(bug-[a-z0-9-]+) = \\[\\]")]
    private static partial Regex FeatureLine();
}

/// <summary>
/// A test that builds the Rust sample: skipped (with the reason) only where <c>cargo</c> is absent,
/// unless EPTFUZZ_REQUIRE_NATIVE=1 (set by CI), where a missing toolchain must fail.
/// </summary>
public sealed class CargoFactAttribute : FactAttribute
{
    public CargoFactAttribute()
    {
        bool onPath = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, "cargo")));
        if (!onPath && Environment.GetEnvironmentVariable("EPTFUZZ_REQUIRE_NATIVE") != "1")
        {
            Skip = "cargo is not installed here (Debian packages cargo and rustc)";
        }
    }
}
