using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using Xunit.Abstractions;

namespace EptFuzz.Mutants.Tests;

/// <summary>
/// Issue 7: the fuzzer, with its default settings and a fixed seed, finds every catalogued bug
/// within <see cref="Detection.Budget"/> executions, reduces each finding to at most
/// <see cref="MaxReducedSteps"/> steps that still show the same signature on the bug and pass on
/// the unpatched implementation (so the finding is the bug's doing, not a divergence the
/// implementation already had); and the unpatched implementation, fuzzed the same way over the
/// whole budget, shows nothing (no false positives).
/// </summary>
public sealed class DetectionTests(ITestOutputHelper output)
{
    public const int MaxReducedSteps = 10;

    /// <summary>The table's file, next to the test assembly.</summary>
    public const string TableFile = "mutant-detection.md";

    /// <summary>The reduced finding of each bug, as NAME.ept, next to the test assembly.</summary>
    public const string FindingsDirectory = "mutant-findings";

    [Fact]
    public void Fuzzer_FindsEveryCataloguedBug_WithinBudget_AndReducesItToTenSteps()
    {
        ImplCompiler compiler = ImplCompiler.FromRepository();
        DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-mutants-");
        var rows = new ConcurrentDictionary<string, Row>(StringComparer.Ordinal);
        DetectionResult baseline;
        try
        {
            using CompiledImpl control = compiler.Compile(null);

            // The unpatched implementation over the whole budget: it must find nothing (asserted below);
            // should it find something, the bug runs still go on, with those signatures known.
            baseline = Detection.Run(control, Path.Combine(temp.FullName, "control"), Detection.Budget, Triaged, stopAtFirst: false, code: Instrumented(compiler, null));
            Parallel.ForEach(MutantCatalog.All, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Environment.ProcessorCount) }, m =>
            {
                using CompiledImpl mutant = compiler.Compile(m);
                rows[m.Name] = Attributed(m, mutant, control, baseline, Path.Combine(temp.FullName, m.Name), Detection.Feedback, Instrumented(compiler, m));
            });
        }
        finally
        {
            temp.Delete(recursive: true);
        }

        string table = Table(rows, baseline);
        output.WriteLine(table);
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, TableFile), table);
        WriteFindings(rows, baseline);

        var failures = new List<string>();
        for (int i = 0; i < baseline.Findings.Count; i++)
        {
            FindingRecord f = baseline.Findings[i];
            failures.Add($"control: the unpatched implementation diverged at execution {f.FoundAtExecution}: {f.Signature} (mutant-findings/control-{i + 1:d2}.ept)");
        }

        foreach (Mutant m in MutantCatalog.All)
        {
            failures.AddRange(Problems(rows[m.Name]));
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    /// <summary>The variant instrumented by SharpFuzz when the feedback includes code coverage (EPTFUZZ_MUTANT_COVERAGE), else null.</summary>
    internal static InstrumentedMutant? Instrumented(ImplCompiler compiler, Mutant? m, CoverageKinds? feedback = null) =>
        ((feedback ?? Detection.Feedback) & CoverageKinds.Code) != 0 ? InstrumentedMutant.Create(compiler.Emit(m)) : null;

    /// <summary>The unpatched implementation's triaged divergences (known-control-divergences.txt).</summary>
    internal static KnownDivergences Triaged { get; } = KnownDivergencesFile.Load(Path.Combine(AppContext.BaseDirectory, "known-control-divergences.txt"));

    /// <summary>Most campaigns one bug may need to get past divergences the unpatched implementation also shows.</summary>
    public const int MaxAttempts = 4;

    /// <summary>
    /// Fuzzes one bug until its first finding that is the bug's doing: a reduced case that passes on
    /// the unpatched implementation. A finding whose reduced case also fails there is a divergence
    /// the implementation already has (one the control run did not reach); its signature is added
    /// to the known list and the campaign starts again from the same seed, so the result of each
    /// bug depends on nothing but the bug (not on the order the parallel runs finish in).
    /// </summary>
    internal static Row Attributed(Mutant m, CompiledImpl mutant, CompiledImpl control, DetectionResult baseline, string dir, CoverageKinds feedback, InstrumentedMutant? code)
    {
        var skipped = new List<string>();
        TimeSpan elapsed = TimeSpan.Zero;
        for (int attempt = 1; ; attempt++)
        {
            DetectionResult r = Detection.Run(mutant, Path.Combine(dir, $"attempt-{attempt}"), Detection.Budget, BaselineAsKnown(baseline, skipped), stopAtFirst: true, feedback, code);
            elapsed += r.Elapsed;
            CaseResult? onMutant = r.Reduced is { } c ? Detection.Replay(c, mutant) : null;
            CaseResult? onControl = r.Reduced is { } d ? Detection.Replay(d, control) : null;
            if (r.Finding is not { } f || onControl?.Status == CaseStatus.Passed || attempt == MaxAttempts)
            {
                return new Row(m, r, onMutant, onControl, skipped, elapsed);
            }

            skipped.Add(f.Signature);
        }
    }

    /// <summary>
    /// The unpatched implementation's own findings (real divergences between it and the model or
    /// the intent, if it has any) as known divergences for the bug runs, so that a bug counts as
    /// found only by a divergence the unpatched code does not show.
    /// </summary>
    private static KnownDivergences BaselineAsKnown(DetectionResult baseline, IReadOnlyList<string> skipped)
    {
        var text = new StringBuilder(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "known-control-divergences.txt")));
        text.AppendLine();
        foreach (FindingRecord f in baseline.Findings)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{f.Signature} shown by the unpatched implementation (control run, execution {f.FoundAtExecution})");
        }

        foreach (string signature in skipped)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{signature} shown by the unpatched implementation (a bug run's reduced finding replayed on it)");
        }

        return KnownDivergencesFile.Parse(text.ToString(), "control findings");
    }

    internal static IEnumerable<string> Problems(Row row)
    {
        string name = row.Mutant.Name;
        if (row.Result.Finding is not { } f || row.Result.Reduced is not { } reduced)
        {
            yield return $"{name}: missed within {Detection.Budget} executions ({row.Mutant.Description})";
            yield break;
        }

        if (reduced.Steps.Length > MaxReducedSteps)
        {
            yield return $"{name}: the reduced finding has {reduced.Steps.Length} steps (at most {MaxReducedSteps})";
        }

        if (row.OnMutant?.Signature != f.Signature)
        {
            yield return $"{name}: the reduced finding replays as '{row.OnMutant?.Signature}' ({row.OnMutant?.Status}), not '{f.Signature}'";
        }

        if (row.OnControl is { Status: not CaseStatus.Passed } c)
        {
            yield return $"{name}: the reduced finding also fails on the unpatched implementation ({c.Status}: {c.Signature ?? c.Message})";
        }
    }

    /// <summary>Each reduced finding as a replayable .ept file, next to the table.</summary>
    private static void WriteFindings(IReadOnlyDictionary<string, Row> rows, DetectionResult baseline)
    {
        string dir = Path.Combine(AppContext.BaseDirectory, FindingsDirectory);
        if (Directory.Exists(dir))
        {
            // Only this run's findings: a bug renamed or fixed leaves no stale file behind.
            Directory.Delete(dir, recursive: true);
        }

        Directory.CreateDirectory(dir);
        for (int i = 0; i < baseline.ReducedAll.Count; i++)
        {
            File.WriteAllText(Path.Combine(dir, $"control-{i + 1:d2}.ept"), CasePrinter.Print(baseline.ReducedAll[i]));
        }

        foreach ((string name, Row row) in rows)
        {
            if (row.Result.Reduced is { } c)
            {
                File.WriteAllText(Path.Combine(dir, name + ".ept"), CasePrinter.Print(c));
            }
        }
    }

    private static string Table(IReadOnlyDictionary<string, Row> rows, DetectionResult baseline)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Seed 0x{Detection.Seed:x}, budget {Detection.Budget} executions per bug, one worker, feedback --coverage {CoverageKindsText.Format(Detection.Feedback)}, reduction cap {Detection.ReduceCap.TotalSeconds:0} s.");
        text.AppendLine();
        text.AppendLine("| bug | executions to detect | signature | reduced steps | seconds | pre-existing signatures skipped |");
        text.AppendLine("|---|---:|---|---:|---:|---:|");
        foreach (Mutant m in MutantCatalog.All)
        {
            if (!rows.TryGetValue(m.Name, out Row? row))
            {
                continue;
            }

            DetectionResult r = row.Result;
            string found = r.Finding is { } f ? f.FoundAtExecution.ToString(CultureInfo.InvariantCulture) : $"missed (>{Detection.Budget})";
            string signature = r.Finding is { } g ? $"`{g.Signature.Replace("|", "\\|", StringComparison.Ordinal)}`" : "-";
            string steps = r.Reduced is { } c ? c.Steps.Length.ToString(CultureInfo.InvariantCulture) : "-";
            text.AppendLine(CultureInfo.InvariantCulture, $"| {m.Name} | {found} | {signature} | {steps} | {row.Elapsed.TotalSeconds:0.0} | {row.Skipped.Count} |");
        }

        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Control (unpatched implementation, same seed and budget): {baseline.Executions} executions in {baseline.Elapsed.TotalSeconds:0.0} s, {baseline.Findings.Count} distinct findings, {baseline.KnownDivergences} known.");
        foreach (FindingRecord f in baseline.Findings)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"- `{f.Signature}` first at execution {f.FoundAtExecution}, seen {f.Count} times, reduced to {f.StepsAfter} steps");
        }

        return text.ToString();
    }

    internal sealed record Row(Mutant Mutant, DetectionResult Result, CaseResult? OnMutant, CaseResult? OnControl, IReadOnlyList<string> Skipped, TimeSpan Elapsed);
}
