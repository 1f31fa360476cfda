using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using EptFuzz.Harness.Fuzzing;
using Xunit.Abstractions;

namespace EptFuzz.Mutants.Tests;

/// <summary>
/// Issue 15: the bookkeeping bugs (<see cref="MutantCatalog.Bookkeeping"/>), fuzzed like the
/// catalog (same seed and budget) once with the default feedback (rules and value classes) and
/// once with the implementation's code coverage added, the variant instrumented by SharpFuzz as
/// the build instruments the shipping implementation. The test holds the README's table to the
/// measurement: each bug is found, or missed, under code coverage as <see cref="Expected"/> says
/// (the README says why the missed ones are out of reach), and a found bug's reduced case shows
/// the same signature on the bug and passes on the unpatched implementation.
/// </summary>
public sealed class BookkeepingDetectionTests(ITestOutputHelper output)
{
    public const string TableFile = "bookkeeping-detection.md";

    private static readonly CoverageKinds WithoutCode = CoverageKinds.Rules | CoverageKinds.Classes;
    private static readonly CoverageKinds WithCode = CoverageKinds.Rules | CoverageKinds.Classes | CoverageKinds.Code;

    /// <summary>Whether code coverage finds each bug within the budget (README "Bookkeeping bugs": why not, where not).</summary>
    private static readonly Dictionary<string, bool> Expected = new(StringComparer.Ordinal)
    {
        ["MergeIgnoresContiguity"] = false,
        ["EmptinessScanChecksTableAddress"] = false,
        ["CombinedSlotsMarkedAsPhysical"] = true,
        ["TlbSlotMatchesOnTagOnly"] = true,
        ["FreeRollbackLeavesPageFree"] = false,
    };

    [Fact]
    public void CodeCoverage_FindsTheBookkeepingBugs_TheReadmeSaysItFinds()
    {
        ImplCompiler compiler = ImplCompiler.FromRepository();
        DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-bookkeeping-");
        var rows = new ConcurrentDictionary<(string, CoverageKinds), DetectionTests.Row>();
        try
        {
            using CompiledImpl control = compiler.Compile(null);
            // The control over the whole budget is the catalog test's (DetectionTests); here only the triaged list is known.
            var noControl = new DetectionResult { Name = "control" };
            var runs = MutantCatalog.Bookkeeping.SelectMany(m => new[] { (m, WithoutCode), (m, WithCode) }).ToList();
            Parallel.ForEach(runs, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Environment.ProcessorCount) }, run =>
            {
                (Mutant m, CoverageKinds feedback) = run;
                using CompiledImpl mutant = compiler.Compile(m);
                InstrumentedMutant? code = DetectionTests.Instrumented(compiler, m, feedback);
                string dir = Path.Combine(temp.FullName, $"{m.Name}-{(int)feedback}");
                rows[(m.Name, feedback)] = DetectionTests.Attributed(m, mutant, control, noControl, dir, feedback, code);
            });
        }
        finally
        {
            temp.Delete(recursive: true);
        }

        string table = Table(rows);
        output.WriteLine(table);
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, TableFile), table);

        var failures = new List<string>();
        foreach (Mutant m in MutantCatalog.Bookkeeping)
        {
            DetectionTests.Row row = rows[(m.Name, WithCode)];
            if (row.Result.Finding is not { } f)
            {
                if (Expected[m.Name])
                {
                    failures.Add($"{m.Name}: missed within {Detection.Budget} executions with code coverage; the README says it is found");
                }

                continue;
            }

            if (!Expected[m.Name])
            {
                failures.Add($"{m.Name}: found at execution {f.FoundAtExecution} with code coverage; the README says no case reaches it: update the README and this test");
            }

            if (row.OnMutant?.Signature != f.Signature || row.OnControl?.Status != EptFuzz.Harness.Running.CaseStatus.Passed)
            {
                failures.Add($"{m.Name}: the reduced finding does not replay as {f.Signature} on the bug ({row.OnMutant?.Signature ?? "nothing"}) or does not pass on the unpatched implementation ({row.OnControl?.Status})");
            }
        }

        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    private static string Table(ConcurrentDictionary<(string, CoverageKinds), DetectionTests.Row> rows)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Seed 0x{Detection.Seed:x}, budget {Detection.Budget} executions per bug, one worker, reduction cap {Detection.ReduceCap.TotalSeconds:0} s.");
        text.AppendLine();
        text.AppendLine("| bug | executions to detect, `rules,classes` | executions to detect, `rules,classes,code` | signature (code) | reduced steps (code) |");
        text.AppendLine("|---|---:|---:|---|---:|");
        foreach (Mutant m in MutantCatalog.Bookkeeping)
        {
            DetectionTests.Row a = rows[(m.Name, WithoutCode)];
            DetectionTests.Row b = rows[(m.Name, WithCode)];
            text.AppendLine(CultureInfo.InvariantCulture, $"| {m.Name} | {Found(a)} | {Found(b)} | `{b.Result.Finding?.Signature.Replace("|", "\\|", StringComparison.Ordinal) ?? "-"}` | {b.Result.Reduced?.Steps.Length.ToString(CultureInfo.InvariantCulture) ?? "-"} |");
        }

        return text.ToString();
    }

    private static string Found(DetectionTests.Row row) =>
        row.Result.Finding is { } f ? f.FoundAtExecution.ToString(CultureInfo.InvariantCulture) : $"missed (>{Detection.Budget})";
}
