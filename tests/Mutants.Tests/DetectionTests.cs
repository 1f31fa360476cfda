using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using Xunit.Abstractions;

namespace EptFuzz.Mutants.Tests;

/// <summary>
/// Issue 7: the fuzzer, with its default settings and a fixed seed, finds every catalogued bug
/// within <see cref="Detection.Budget"/> executions, reduces each finding to at most
/// <see cref="MaxReducedSteps"/> steps that still show the same signature, and finds nothing in
/// the unpatched implementation within the same budget.
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
        try
        {
            // The unpatched implementation first (it always runs the whole budget), then the bugs.
            Mutant?[] work = [null, .. MutantCatalog.All];
            using CompiledImpl control = compiler.Compile(null);
            Parallel.ForEach(work, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Environment.ProcessorCount) }, m =>
            {
                string name = m?.Name ?? "control";
                if (m is null)
                {
                    rows[name] = new Row(null, Detection.Run(control, Path.Combine(temp.FullName, name), Detection.Budget), null, null);
                    return;
                }

                using CompiledImpl mutant = compiler.Compile(m);
                DetectionResult r = Detection.Run(mutant, Path.Combine(temp.FullName, name), Detection.Budget);
                CaseResult? onMutant = r.Reduced is { } c ? Detection.Replay(c, mutant) : null;
                CaseResult? onControl = r.Reduced is { } d ? Detection.Replay(d, control) : null;
                rows[name] = new Row(m, r, onMutant, onControl);
            });
        }
        finally
        {
            temp.Delete(recursive: true);
        }

        string table = Table(rows);
        output.WriteLine(table);
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, TableFile), table);
        WriteFindings(rows);

        var failures = new List<string>();
        Row controlRow = rows["control"];
        if (controlRow.Result.Finding is { } falsePositive)
        {
            failures.Add($"control: the unpatched implementation diverged at execution {falsePositive.FoundAtExecution}: {falsePositive.Signature}{Environment.NewLine}{CasePrinter.Print(controlRow.Result.Reduced!)}");
        }

        foreach (Mutant m in MutantCatalog.All)
        {
            failures.AddRange(Problems(rows[m.Name]));
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    private static IEnumerable<string> Problems(Row row)
    {
        string name = row.Mutant!.Name;
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
    private static void WriteFindings(IReadOnlyDictionary<string, Row> rows)
    {
        string dir = Path.Combine(AppContext.BaseDirectory, FindingsDirectory);
        Directory.CreateDirectory(dir);
        foreach ((string name, Row row) in rows)
        {
            if (row.Result.Reduced is { } c)
            {
                File.WriteAllText(Path.Combine(dir, name + ".ept"), CasePrinter.Print(c));
            }
        }
    }

    private static string Table(IReadOnlyDictionary<string, Row> rows)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Seed 0x{Detection.Seed:x}, budget {Detection.Budget} executions per bug, one worker, reduction cap {Detection.ReduceCap.TotalSeconds:0} s.");
        text.AppendLine();
        text.AppendLine("| bug | executions to detect | signature | reduced steps | seconds |");
        text.AppendLine("|---|---:|---|---:|---:|");
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
            text.AppendLine(CultureInfo.InvariantCulture, $"| {m.Name} | {found} | {signature} | {steps} | {r.Elapsed.TotalSeconds:0.0} |");
        }

        if (rows.TryGetValue("control", out Row? control))
        {
            string verdict = control.Result.Finding is { } f ? $"diverged at {f.FoundAtExecution}" : "no finding";
            text.AppendLine(CultureInfo.InvariantCulture, $"| *(control: unpatched)* | {verdict} in {control.Result.Executions} | - | - | {control.Result.Elapsed.TotalSeconds:0.0} |");
        }

        return text.ToString();
    }

    private sealed record Row(Mutant? Mutant, DetectionResult Result, CaseResult? OnMutant, CaseResult? OnControl);
}
