using System.CommandLine;
using System.Diagnostics;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Reporting;
using EptFuzz.Harness.Running;

namespace EptFuzz.Cli.Commands;

/// <summary>
/// <c>eptfuzz gate</c>: the release conformance gate. Replays the whole corpus, writes the
/// machine reports, and exits non-zero on any divergence, failed expectation, bad file or
/// infrastructure failure. Known divergences are listed and counted, never failing.
/// </summary>
internal static class GateCommand
{
    public static Command Create()
    {
        var corpus = new Option<string>("--corpus") { Description = "Corpus directory", DefaultValueFactory = _ => Composition.DefaultCorpus };
        var targets = Shared.Targets();
        var known = Shared.Known();
        var junit = new Option<string?>("--junit") { Description = "Write a JUnit XML report here" };
        var tap = new Option<string?>("--tap") { Description = "Write a TAP 13 report here" };
        var sarif = new Option<string?>("--sarif") { Description = "Write a SARIF 2.1.0 report here" };
        var json = new Option<string?>("--json") { Description = "Write the tool's JSON report here" };
        var random = new Option<int>("--random") { Description = "Also replay this many fixed-seed generated cases", DefaultValueFactory = _ => 200 };
        var seed = new Option<string>("--seed") { Description = "Seed of the random set (decimal or 0x hex)", DefaultValueFactory = _ => $"0x{RandomSet.DefaultSeed:x}" };
        var randomDir = new Option<string>("--random-dir") { Description = "Where generated cases that fail are written, to replay them", DefaultValueFactory = _ => "gate-random" };
        var caseTime = Shared.CaseTime();
        var caseMemory = Shared.CaseMemory();
        var command = new Command("gate", "Replay the corpus (and a fixed-seed random set) as a release gate and write JUnit/TAP/SARIF/JSON reports")
        {
            corpus, targets, known, junit, tap, sarif, json, random, seed, randomDir, caseTime, caseMemory,
        };
        command.SetAction(parse =>
        {
            if (!Numbers.TryParse(parse.GetValue(seed)!, out ulong seedValue))
            {
                return Shared.Usage($"--seed: '{parse.GetValue(seed)}' is not a number (decimal or 0x hex)");
            }

            if (parse.GetValue(random) is var count && count < 0)
            {
                return Shared.Usage("--random must not be negative");
            }

            if (Shared.Budget(parse.GetValue(caseTime), parse.GetValue(caseMemory), out string? budgetError) is not { } budget)
            {
                return Shared.Usage(budgetError!);
            }

            return Run(
                parse.GetValue(corpus)!, parse.GetValue(targets)!, parse.GetValue(known),
                parse.GetValue(junit), parse.GetValue(tap), parse.GetValue(sarif), parse.GetValue(json), count, seedValue, parse.GetValue(randomDir)!, budget);
        });
        return command;
    }

    private static int Run(string corpus, string targetList, string? knownPath, string? junit, string? tap, string? sarif, string? json, int randomCount, ulong seed, string randomDir, CaseBudget budget)
    {
        if (!Directory.Exists(corpus))
        {
            return Shared.Usage($"--corpus: no such directory: {corpus}");
        }

        var (targets, error) = Composition.CreateTargets(targetList);
        if (error is not null)
        {
            return Shared.Usage(error);
        }

        if (Composition.Preflight(targets) is { } unavailable)
        {
            return Shared.Infrastructure(unavailable);
        }

        var (known, knownErrors) = Composition.LoadKnown(knownPath, corpus);
        if (knownErrors.Count > 0)
        {
            return Shared.Usage(string.Join(Environment.NewLine + "eptfuzz: ", knownErrors));
        }

        var (files, _) = CorpusReplay.FindCases([corpus]);
        var options = Composition.Options(targets, known, null, targetList);
        var clock = Stopwatch.StartNew();
        var results = new List<CaseResult>(files.Count);
        foreach (var file in files)
        {
            results.Add(BudgetedRun.RunFile(file, options, budget, out bool abandoned));
            if (abandoned)
            {
                // The timed-out case still holds its targets: the next case gets fresh ones.
                options = Composition.Options(Composition.CreateTargets(targetList).Targets, known, null, targetList);
            }
        }

        // The fixed-seed random set: the same cases on every machine. A generated case that does
        // not pass is written to --random-dir first, so the report points at a file that replays.
        foreach (var generated in RandomSet.Generate(seed, randomCount, new GeneratorProfile { Features = targets.Features }))
        {
            var path = Path.Combine(randomDir, Path.GetFileName(generated.SourceName));
            var result = BudgetedRun.Run(generated with { SourceName = path }, options, budget, out bool abandoned);
            if (abandoned)
            {
                options = Composition.Options(Composition.CreateTargets(targetList).Targets, known, null, targetList);
            }

            if (result.Status != CaseStatus.Passed)
            {
                FindingFile.WriteAtomic(path, CasePrinter.Print(generated));
            }

            results.Add(result);
        }

        var report = new GateReport("eptfuzz", typeof(GateCommand).Assembly.GetName().Version?.ToString() ?? "0", [.. targets.Select(t => t.Name), .. targets.External is { } x ? [x.Declare().Name] : Array.Empty<string>()], results, clock.Elapsed);
        foreach (var (path, text) in new[] { (junit, (Func<GateReport, string>)JUnitWriter.Write), (tap, TapWriter.Write), (sarif, SarifWriter.Write), (json, JsonReportWriter.Write) })
        {
            if (path is not null)
            {
                FindingFile.WriteAtomic(path, text(report));
            }
        }

        Shared.PrintSummary(results, clock.Elapsed);
        return report.ExitCode;
    }
}
