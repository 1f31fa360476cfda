using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace EptFuzz.Mutants.Tests;

/// <summary>
/// The libFuzzer entry point end to end: libFuzzer (the driver harness/LibFuzzer builds with
/// clang-16 and libfuzzer-16-dev) drives the entry point over an implementation with a seeded
/// bug, instrumented by SharpFuzz as the build instruments the real one; the test checks that the
/// session reports the bug, that the finding is written as an .ept file, and that
/// <c>eptfuzz replay</c> reproduces it as a divergence on the patched implementation and passes
/// it on the unpatched one.
/// </summary>
public sealed class LibFuzzerDetectionTests(ITestOutputHelper output)
{
    /// <summary>
    /// A bug in the table-page recycler that no single access shows: the fuzzer must first free a
    /// table (unmap a whole region) and then map again so that the recycled page is linked.
    /// </summary>
    private const string SeededBug = "RecycledTablePageNotZeroed";

    /// <summary>
    /// The session's limit. With -seed=3 and -len_control=0 (README: the decoder wants inputs of a
    /// few hundred bytes from the start) libFuzzer found the bug after about 700 executions, 2 s
    /// on a machine with load 15 on 2 cores; the limit leaves room for a slower machine.
    /// </summary>
    private static readonly TimeSpan FuzzTime = TimeSpan.FromSeconds(45);

    [LibFuzzerFact]
    public void LibFuzzer_FindsASeededBug_AndItsFindingReplaysAsADivergence()
    {
        Mutant bug = MutantCatalog.All.Single(m => m.Name == SeededBug);
        string work = Directory.CreateTempSubdirectory("eptfuzz-libfuzzer-").FullName;
        try
        {
            byte[] patched = ImplCompiler.FromRepository().Emit(bug);

            // The entry point's build, with the patched implementation instrumented in its place.
            string entry = Path.Combine(work, "entry");
            CopyDirectory(BuildOutputs.LibFuzzer, entry);
            File.WriteAllBytes(Path.Combine(entry, "EptFuzz.Impl.dll"), patched);
            Run("dotnet", ["tool", "run", "sharpfuzz", Path.Combine(entry, "EptFuzz.Impl.dll")], RepositoryRoot.Path, TimeSpan.FromSeconds(60), expect: 0);

            string findings = Path.Combine(work, "findings");
            string corpus = Directory.CreateDirectory(Path.Combine(work, "corpus")).FullName;
            var fuzz = Run(
                Path.Combine(entry, "eptfuzz-libfuzzer"),
                ["-seed=3", "-len_control=0", $"-max_total_time={(int)FuzzTime.TotalSeconds}", $"-artifact_prefix={work}/", $"--findings={findings}", "--reduce_time=5", corpus],
                work,
                FuzzTime + TimeSpan.FromSeconds(40));
            Assert.True(fuzz.ExitCode != 0, $"libFuzzer did not report {SeededBug} within {FuzzTime.TotalSeconds} s:\n{fuzz.Output}");
            Assert.Contains("eptfuzz-libfuzzer: finding:", fuzz.Output, StringComparison.Ordinal);
            Assert.NotEmpty(Directory.GetFiles(work, "crash-*"));

            string finding = Directory.GetFiles(findings, "finding-*.ept").Single(f => !f.EndsWith(".raw.ept", StringComparison.Ordinal));
            string signature = File.ReadLines(finding).Single(l => l.StartsWith("# signature: ", StringComparison.Ordinal))["# signature: ".Length..];
            output.WriteLine($"{SeededBug}: {signature}\n{File.ReadAllText(finding)}");

            // eptfuzz replay, with the patched implementation: the same divergence (exit 1).
            string cli = Path.Combine(work, "cli");
            CopyDirectory(BuildOutputs.Cli, cli);
            File.WriteAllBytes(Path.Combine(cli, "EptFuzz.Impl.dll"), patched);
            var replay = Run("dotnet", [Path.Combine(cli, "eptfuzz.dll"), "replay", finding], work, TimeSpan.FromSeconds(60), expect: 1);
            Assert.Contains(signature, replay.Output, StringComparison.Ordinal);

            // And with the shipping implementation: it passes (exit 0), so the finding is the bug's.
            Run("dotnet", [Path.Combine(BuildOutputs.Cli, "eptfuzz.dll"), "replay", finding], work, TimeSpan.FromSeconds(60), expect: 0);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>
    /// An entry point process that dies on an input (no exception reached SharpFuzz's runner): the
    /// driver decodes that input into an .ept finding itself before libFuzzer records the crash.
    /// The "entry point" here is a bash script that says it is ready and exits on the first input, and
    /// runs the real entry point for the driver's <c>decode</c>.
    /// </summary>
    [LibFuzzerFact]
    public void RunnerThatDies_LeavesTheDecodedInputAsAFinding()
    {
        string work = Directory.CreateTempSubdirectory("eptfuzz-runner-dies-").FullName;
        try
        {
            string entry = Path.Combine(BuildOutputs.LibFuzzer, "EptFuzz.LibFuzzer.dll");
            string script = $"if [ \"$0\" = decode ]; then exec dotnet '{entry}' decode \"$1\" \"$2\"; fi; printf '\\000\\000\\000\\000' >&199; exit 0";
            string findings = Path.Combine(work, "findings");
            Directory.CreateDirectory(findings);
            var fuzz = Run(BuildOutputs.Driver, ["-runs=5", $"-artifact_prefix={work}/", $"--findings={findings}", "--target_path=/bin/bash", "--target_arg=-c", $"--target_arg={script}"], work, TimeSpan.FromSeconds(60));
            Assert.True(fuzz.ExitCode != 0, fuzz.Output);
            Assert.Contains("eptfuzz-libfuzzer: finding: the entry point exited with code 0 on this input", fuzz.Output, StringComparison.Ordinal);
            string finding = Assert.Single(Directory.GetFiles(findings, "finding-runner-died-*.ept"));
            var parsed = EptFuzz.Harness.Cases.CaseParser.Parse(File.ReadAllBytes(finding), finding);
            Assert.True(parsed.Succeeded, parsed.ErrorText());
            string crash = Assert.Single(Directory.GetFiles(work, "crash-*"));
            Assert.Contains(Path.GetFileName(crash)["crash-".Length..], File.ReadAllText(finding), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The entry point's <c>decode</c>: a libFuzzer file becomes the case the fuzzer ran for it; bad use is exit 2.</summary>
    [Fact]
    public void Decode_WritesTheCaseTheInputChooses_AndRefusesBadUse()
    {
        string work = Directory.CreateTempSubdirectory("eptfuzz-decode-").FullName;
        try
        {
            byte[] input = [.. Enumerable.Range(0, 700).Select(i => (byte)(i * 37))];
            string file = Path.Combine(work, "crash-input");
            File.WriteAllBytes(file, input);
            string entry = Path.Combine(BuildOutputs.LibFuzzer, "EptFuzz.LibFuzzer.dll");
            string ept = Path.Combine(work, "case.ept");
            Run("dotnet", [entry, "decode", file, ept], work, TimeSpan.FromSeconds(60), expect: 0);

            var parsed = EptFuzz.Harness.Cases.CaseParser.Parse(File.ReadAllBytes(ept), ept);
            Assert.True(parsed.Succeeded, parsed.ErrorText());
            string expected = EptFuzz.Harness.Cases.CasePrinter.Print(EptFuzz.Harness.Fuzzing.ChoiceDecoder.Decode(input) with { HeaderComments = [] });
            Assert.Equal(expected, EptFuzz.Harness.Cases.CasePrinter.Print(parsed.Case with { HeaderComments = [] }));
            Assert.Contains(EptFuzz.Harness.Fuzzing.ChoiceDecoder.Sha1(input), File.ReadAllText(ept), StringComparison.Ordinal);

            Run("dotnet", [entry, "decode", Path.Combine(work, "missing")], work, TimeSpan.FromSeconds(60), expect: 2);
            var usage = Run("dotnet", [entry], work, TimeSpan.FromSeconds(60), expect: 2);
            Assert.Contains("usage:", usage.Output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private (int ExitCode, string Output) Run(string program, IReadOnlyList<string> arguments, string directory, TimeSpan timeout, int? expect = null)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        var text = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(text, e.Data);
        process.ErrorDataReceived += (_, e) => Append(text, e.Data);
        var clock = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"{program} {string.Join(' ', arguments)} ran past {timeout.TotalSeconds} s:\n{text}");
        }

        process.WaitForExit();
        string all;
        lock (text)
        {
            all = text.ToString();
        }

        output.WriteLine($"$ {program} {string.Join(' ', arguments)}  -> exit {process.ExitCode} in {clock.Elapsed.TotalSeconds:0.0} s");
        output.WriteLine(Tail(all, 60));
        if (expect is { } code)
        {
            Assert.True(process.ExitCode == code, $"{program} {string.Join(' ', arguments)}: exit {process.ExitCode}, expected {code}:\n{all}");
        }

        return (process.ExitCode, all);
    }

    private static void Append(StringBuilder text, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (text)
        {
            text.AppendLine(line);
        }
    }

    private static string Tail(string text, int lines)
    {
        string[] all = text.Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}

/// <summary>Where the build put the entry point (with its driver) and the CLI: the same configuration as this test assembly.</summary>
internal static class BuildOutputs
{
    /// <summary>bin/CONFIGURATION/net10.0 of this test assembly, e.g. Release.</summary>
    private static string Configuration => new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;

    public static string LibFuzzer => Path.Combine(RepositoryRoot.Path, "harness", "LibFuzzer", "bin", Configuration, "net10.0");

    public static string Cli => Path.Combine(RepositoryRoot.Path, "harness", "Cli", "bin", Configuration, "net10.0");

    public static string Driver => Path.Combine(LibFuzzer, "eptfuzz-libfuzzer");
}

/// <summary>
/// Runs where the build made the libFuzzer driver (clang-16 and libfuzzer-16-dev installed);
/// skipped with that reason elsewhere, unless EPTFUZZ_REQUIRE_NATIVE=1 (CI), where it fails.
/// </summary>
internal sealed class LibFuzzerFactAttribute : FactAttribute
{
    public LibFuzzerFactAttribute()
    {
        if (!File.Exists(BuildOutputs.Driver) && Environment.GetEnvironmentVariable("EPTFUZZ_REQUIRE_NATIVE") != "1")
        {
            Skip = $"no libFuzzer driver at {BuildOutputs.Driver}: the build makes it where clang-16 and libfuzzer-16-dev are installed (apt-get install clang-16 libfuzzer-16-dev); set EPTFUZZ_REQUIRE_NATIVE=1 to fail instead";
        }
    }
}
