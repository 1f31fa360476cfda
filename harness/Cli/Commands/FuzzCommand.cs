using System.CommandLine;
using System.Globalization;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using Spectre.Console;

namespace EptFuzz.Cli.Commands;

/// <summary>
/// <c>eptfuzz fuzz</c>: a guided campaign. With no flags it runs 60 seconds on model,impl and
/// writes to fuzz-out/, which is the README's main command.
/// </summary>
internal static class FuzzCommand
{
    public static Command Create()
    {
        var seed = new Option<string>("--seed") { Description = "Campaign seed (decimal or 0x hex)", DefaultValueFactory = _ => "0x5eed" };
        var time = new Option<double?>("--max-total-time") { Description = "Seconds this invocation may run (default 60 when --runs is not given)" };
        var runs = new Option<long?>("--runs") { Description = "Executions this invocation may run" };
        var jobs = new Option<int>("--jobs") { Description = "Parallel workers on this machine", DefaultValueFactory = _ => 1 };
        var corpus = new Option<string?>("--corpus") { Description = "Seed directory of .ept cases (default: corpus/ when present)" };
        var output = new Option<string>("--out") { Description = "Campaign directory", DefaultValueFactory = _ => "fuzz-out" };
        var targets = Shared.Targets();
        var resume = new Option<bool>("--resume") { Description = "Continue the campaign in --out with its cumulative counters" };
        var shard = new Option<string>("--shard") { Description = "K/N: run the K-th of N disjoint parts of the seed space", DefaultValueFactory = _ => "1/1" };
        var cpuProfile = new Option<string>("--cpu-profile") { Description = "random, default, full or minimal", DefaultValueFactory = _ => "random" };
        var steps = new Option<int>("--steps") { Description = "Steps per generated case", DefaultValueFactory = _ => GeneratorProfile.DefaultSteps };
        var probeWeight = new Option<int>("--probe-weight")
        {
            Description = $"How often a generated step is a probe, against operations' 42 (0 to 10000). The default, {GeneratorProfile.DefaultProbeWeight}, finds the bug catalog soonest; "
                + "a high weight (e.g. 400) makes an access-heavy campaign that checks each built state with many more accesses; --resume needs the same value",
            DefaultValueFactory = _ => GeneratorProfile.DefaultProbeWeight,
        };
        var reduceTime = new Option<double>("--reduce-time") { Description = "Seconds to reduce each new finding", DefaultValueFactory = _ => Reducer.DefaultCap.TotalSeconds };
        var emitTest = new Option<bool>("--emit-test") { Description = "Also write an xunit regression test for each finding" };
        var known = Shared.Known();
        var caseTime = Shared.CaseTime();
        caseTime.Description = "Seconds one case may run by its planned cost: a case planned over it is refused before it runs and counted (rejected, over budget); one that runs long is a hang";
        var caseMemory = Shared.CaseMemory();
        caseMemory.Description = "MiB the page entries a case's maps may create are planned to take: a case over it is refused before it runs and counted (rejected, over budget)";
        var coverage = new Option<string>("--coverage")
        {
            Description = $"The feedback that guides the campaign: {CoverageKindsText.Usage}. Default rules,classes (README, Guidance); code needs the instrumented build",
            DefaultValueFactory = _ => CoverageKindsText.Format(CoverageKinds.Default),
        };
        var command = new Command("fuzz", "Run a coverage-guided differential fuzz campaign")
        {
            seed, time, runs, jobs, corpus, output, targets, resume, shard, cpuProfile, steps, probeWeight, reduceTime, emitTest, known, coverage, caseTime, caseMemory,
        };
        command.SetAction((parse, cancellation) => Task.FromResult(Shared.Budget(parse.GetValue(caseTime), parse.GetValue(caseMemory), out string? budgetError) is { } budget
            ? Run(parse, seed, time, runs, jobs, corpus, output, targets, resume, shard, cpuProfile, steps, probeWeight, reduceTime, emitTest, known, coverage, budget, cancellation)
            : Shared.Usage(budgetError!)));
        return command;
    }

    private static int Run(
        ParseResult parse, Option<string> seed, Option<double?> time, Option<long?> runs, Option<int> jobs, Option<string?> corpus,
        Option<string> output, Option<string> targets, Option<bool> resume, Option<string> shard, Option<string> cpuProfile,
        Option<int> steps, Option<int> probeWeight, Option<double> reduceTime, Option<bool> emitTest, Option<string?> known, Option<string> coverage, EptFuzz.Harness.Cases.CaseBudget budget, CancellationToken cancellation)
    {
        if (!CoverageKindsText.TryParse(parse.GetValue(coverage)!, out CoverageKinds feedback, out string coverageError))
        {
            return Shared.Usage(coverageError);
        }

        if (!Numbers.TryParse(parse.GetValue(seed)!, out ulong seedValue))
        {
            return Shared.Usage($"--seed: '{parse.GetValue(seed)}' is not a number (decimal or 0x hex)");
        }

        if (!Shard.TryParse(parse.GetValue(shard)!, out var shardValue, out var shardError))
        {
            return Shared.Usage($"--shard: {shardError}");
        }

        if (GeneratorProfile.ParseCpuProfile(parse.GetValue(cpuProfile)!, out var profileError) is not { } profile)
        {
            return Shared.Usage($"--cpu-profile: {profileError}");
        }

        string targetList = parse.GetValue(targets)!;
        var (probe, error) = Composition.CreateTargets(targetList);
        if (error is not null)
        {
            return Shared.Usage(error);
        }

        if (Composition.Preflight(probe) is { } unavailable)
        {
            return Shared.Infrastructure(unavailable);
        }

        string? corpusDir = parse.GetValue(corpus) ?? (Directory.Exists(Composition.DefaultCorpus) ? Composition.DefaultCorpus : null);
        var (knownDivergences, knownErrors) = Composition.LoadKnown(parse.GetValue(known), corpusDir ?? Composition.DefaultCorpus);
        if (knownErrors.Count > 0)
        {
            return Shared.Usage(string.Join(Environment.NewLine + "eptfuzz: ", knownErrors));
        }

        ICodeCoverageSource? code = null;
        if ((feedback & CoverageKinds.Code) != 0)
        {
            code = Composition.CodeCoverage(targetList, knownDivergences, out string? why);
            if (code is null)
            {
                return Shared.Usage($"--coverage {CoverageKindsText.Format(feedback)}: {why}");
            }
        }

        long? runBudget = parse.GetValue(runs);
        double? seconds = parse.GetValue(time) ?? (runBudget is null ? 60 : null);
        var options = new CampaignOptions
        {
            OutDir = parse.GetValue(output)!,
            Targets = () => Composition.Options(Composition.CreateTargets(targetList).Targets, knownDivergences, null, targetList),
            Seed = seedValue,
            MaxTotalTime = seconds is { } s ? TimeSpan.FromSeconds(s) : null,
            Runs = runBudget,
            Jobs = parse.GetValue(jobs),
            CorpusDir = corpusDir,
            Resume = parse.GetValue(resume),
            Shard = shardValue,
            Profile = new GeneratorProfile { Cpu = profile, Steps = parse.GetValue(steps), ProbeWeight = parse.GetValue(probeWeight), Features = probe.Features },
            ReduceCap = TimeSpan.FromSeconds(parse.GetValue(reduceTime)),
            Budget = budget,
            EmitRegressionTests = parse.GetValue(emitTest),
            RulesModelled = probe.Any(t => t.Name == "model") ? Composition.ModelledRuleCount : null,
            Coverage = feedback,
            CodeCoverage = code,
            CommandLine = "eptfuzz " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
        };
        if (options.Validate() is { } invalid)
        {
            return Shared.Usage(invalid);
        }

        CampaignSummary summary;
        try
        {
            summary = new Campaign(options).Run(cancellation, StatusReporter.ForConsole());
        }
        catch (CampaignUsageException e)
        {
            return Shared.Usage(e.Message);
        }

        foreach (var warning in summary.Warnings)
        {
            Console.Error.WriteLine($"eptfuzz: warning: {warning}");
        }

        var table = new Table().Border(TableBorder.Rounded).AddColumn("campaign").AddColumn(new TableColumn(string.Empty).RightAligned());
        var f = summary.Final;
        table.AddRow("executions", f.Executions.ToString(CultureInfo.InvariantCulture));
        table.AddRow("exec/s", f.ExecPerSecond.ToString("0", CultureInfo.InvariantCulture));
        table.AddRow("probes", f.Probes.ToString(CultureInfo.InvariantCulture));
        table.AddRow("probes/s", f.ProbesPerSecond.ToString("0", CultureInfo.InvariantCulture));
        table.AddRow("rules hit / modelled", $"{f.RulesHit} / {f.RulesModelled}");
        table.AddRow("coverage features", f.Features.ToString(CultureInfo.InvariantCulture));
        table.AddRow("corpus (working set)", f.CorpusSize.ToString(CultureInfo.InvariantCulture));
        table.AddRow("queue (kept, culled included)", f.QueueSize.ToString(CultureInfo.InvariantCulture));
        table.AddRow("findings (unique)", f.Findings.ToString(CultureInfo.InvariantCulture));
        table.AddRow("duplicates", f.Duplicates.ToString(CultureInfo.InvariantCulture));
        table.AddRow("known divergences", f.KnownDivergences.ToString(CultureInfo.InvariantCulture));
        table.AddRow("rejected (over the case budget)", $"{f.Rejected} ({f.RejectedOverBudget})");
        table.AddRow("infrastructure failures", f.InfrastructureFailures.ToString(CultureInfo.InvariantCulture));
        table.AddRow("hangs", f.Hangs.ToString(CultureInfo.InvariantCulture));
        table.Caption($"{summary.OutDir}: stopped ({summary.StopReason}) after {f.Elapsed.TotalSeconds:0.0} s");
        AnsiConsole.Write(table);
        foreach (var finding in summary.Findings)
        {
            AnsiConsole.WriteLine($"finding {finding.Signature} x{finding.Count}: {Path.Combine(summary.OutDir, finding.ReducedPath)} ({finding.StepsBefore} -> {finding.StepsAfter} steps)");
            AnsiConsole.WriteLine($"  replay: ./eptfuzz replay {Path.Combine(summary.OutDir, finding.ReducedPath)} --targets {targetList} --trace");
        }

        if (summary.StoppedByInfrastructure)
        {
            Console.Error.WriteLine($"eptfuzz: {summary.StopReason}");
        }

        return summary.ExitCode;
    }
}
