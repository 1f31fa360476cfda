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
        command.SetAction(parse => Run(new GateArguments
        {
            Corpus = parse.GetValue(corpus)!,
            Targets = parse.GetValue(targets)!,
            Known = parse.GetValue(known),
            JUnit = parse.GetValue(junit),
            Tap = parse.GetValue(tap),
            Sarif = parse.GetValue(sarif),
            Json = parse.GetValue(json),
            Random = parse.GetValue(random),
            Seed = parse.GetValue(seed)!,
            RandomDir = parse.GetValue(randomDir)!,
            CaseTime = parse.GetValue(caseTime),
            CaseMemory = parse.GetValue(caseMemory),
        }));
        return command;
    }

    private static int Run(GateArguments a)
    {
        if (!Numbers.TryParse(a.Seed, out ulong seed))
        {
            return Shared.Usage($"--seed: '{a.Seed}' is not a number (decimal or 0x hex)");
        }

        if (a.Random < 0)
        {
            return Shared.Usage("--random must not be negative");
        }

        if (Shared.Budget(a.CaseTime, a.CaseMemory, out string? budgetError) is not { } budget)
        {
            return Shared.Usage(budgetError!);
        }

        string corpus = a.Corpus;
        string targetList = a.Targets;
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

        var (known, knownErrors) = Composition.LoadKnown(a.Known, corpus);
        if (knownErrors.Count > 0)
        {
            return Shared.Usage(string.Join(Environment.NewLine + "eptfuzz: ", knownErrors));
        }

        var (files, _) = CorpusReplay.FindCases([corpus]);
        var options = Composition.Options(targets, known, null, targetList);
        var clock = Stopwatch.StartNew();
        var results = new List<CaseResult>(files.Count);
        using var runner = new BudgetedRun();
        foreach (var file in files)
        {
            results.Add(runner.RunFile(file, options, budget, out bool abandoned));
            if (abandoned)
            {
                // The timed-out case still holds its targets: the next case gets fresh ones.
                options = Composition.Options(Composition.CreateTargets(targetList).Targets, known, null, targetList);
            }
        }

        // The fixed-seed random set: the same cases on every machine. A generated case that does
        // not pass is written to --random-dir first, so the report points at a file that replays.
        foreach (var generated in RandomSet.Generate(seed, a.Random, new GeneratorProfile { Features = targets.Features }))
        {
            var path = Path.Combine(a.RandomDir, Path.GetFileName(generated.SourceName));
            var result = runner.Run(generated with { SourceName = path }, options, budget, out bool abandoned);
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
        foreach (var (path, text) in new[] { (a.JUnit, (Func<GateReport, string>)JUnitWriter.Write), (a.Tap, TapWriter.Write), (a.Sarif, SarifWriter.Write), (a.Json, JsonReportWriter.Write) })
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

/// <summary>What <c>eptfuzz gate</c> was given, one property per flag, as read before it is checked.</summary>
internal sealed record GateArguments
{
    public required string Corpus { get; init; }

    public required string Targets { get; init; }

    public string? Known { get; init; }

    public string? JUnit { get; init; }

    public string? Tap { get; init; }

    public string? Sarif { get; init; }

    public string? Json { get; init; }

    /// <summary>How many fixed-seed generated cases to replay after the corpus.</summary>
    public int Random { get; init; }

    public required string Seed { get; init; }

    public required string RandomDir { get; init; }

    public double CaseTime { get; init; }

    public long CaseMemory { get; init; }
}
