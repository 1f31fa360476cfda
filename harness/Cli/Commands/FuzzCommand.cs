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
        command.SetAction((parse, cancellation) => Task.FromResult(Run(
            new FuzzArguments
            {
                Seed = parse.GetValue(seed)!,
                MaxTotalTime = parse.GetValue(time),
                Runs = parse.GetValue(runs),
                Jobs = parse.GetValue(jobs),
                Corpus = parse.GetValue(corpus),
                Out = parse.GetValue(output)!,
                Targets = parse.GetValue(targets)!,
                Resume = parse.GetValue(resume),
                Shard = parse.GetValue(shard)!,
                CpuProfile = parse.GetValue(cpuProfile)!,
                Steps = parse.GetValue(steps),
                ProbeWeight = parse.GetValue(probeWeight),
                ReduceTime = parse.GetValue(reduceTime),
                EmitTest = parse.GetValue(emitTest),
                Known = parse.GetValue(known),
                Coverage = parse.GetValue(coverage)!,
                CaseTime = parse.GetValue(caseTime),
                CaseMemory = parse.GetValue(caseMemory),
            },
            cancellation)));
        return command;
    }

    private static int Run(FuzzArguments a, CancellationToken cancellation)
    {
        if (Shared.Budget(a.CaseTime, a.CaseMemory, out string? budgetError) is not { } budget)
        {
            return Shared.Usage(budgetError!);
        }

        if (!CoverageKindsText.TryParse(a.Coverage, out CoverageKinds feedback, out string coverageError))
        {
            return Shared.Usage(coverageError);
        }

        if (!Numbers.TryParse(a.Seed, out ulong seedValue))
        {
            return Shared.Usage($"--seed: '{a.Seed}' is not a number (decimal or 0x hex)");
        }

        if (!Shard.TryParse(a.Shard, out var shardValue, out var shardError))
        {
            return Shared.Usage($"--shard: {shardError}");
        }

        if (GeneratorProfile.ParseCpuProfile(a.CpuProfile, out var profileError) is not { } profile)
        {
            return Shared.Usage($"--cpu-profile: {profileError}");
        }

        string targetList = a.Targets;
        var (probe, error) = Composition.CreateTargets(targetList);
        if (error is not null)
        {
            return Shared.Usage(error);
        }

        if (Composition.Preflight(probe) is { } unavailable)
        {
            return Shared.Infrastructure(unavailable);
        }

        string? corpusDir = a.Corpus ?? (Directory.Exists(Composition.DefaultCorpus) ? Composition.DefaultCorpus : null);
        var (knownDivergences, knownErrors) = Composition.LoadKnown(a.Known, corpusDir ?? Composition.DefaultCorpus);
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

        long? runBudget = a.Runs;
        double? seconds = a.MaxTotalTime ?? (runBudget is null ? 60 : null);
        var options = new CampaignOptions
        {
            OutDir = a.Out,
            Targets = () => Composition.Options(Composition.CreateTargets(targetList).Targets, knownDivergences, null, targetList),
            Seed = seedValue,
            MaxTotalTime = seconds is { } s ? TimeSpan.FromSeconds(s) : null,
            Runs = runBudget,
            Jobs = a.Jobs,
            CorpusDir = corpusDir,
            Resume = a.Resume,
            Shard = shardValue,
            Profile = new GeneratorProfile { Cpu = profile, Steps = a.Steps, ProbeWeight = a.ProbeWeight, Features = probe.Features },
            ReduceCap = TimeSpan.FromSeconds(a.ReduceTime),
            Budget = budget,
            EmitRegressionTests = a.EmitTest,
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

/// <summary>What <c>eptfuzz fuzz</c> was given, one property per flag, as read before it is checked.</summary>
internal sealed record FuzzArguments
{
    public required string Seed { get; init; }

    public double? MaxTotalTime { get; init; }

    public long? Runs { get; init; }

    public int Jobs { get; init; } = 1;

    public string? Corpus { get; init; }

    public required string Out { get; init; }

    public required string Targets { get; init; }

    public bool Resume { get; init; }

    public required string Shard { get; init; }

    public required string CpuProfile { get; init; }

    public int Steps { get; init; }

    public int ProbeWeight { get; init; }

    public double ReduceTime { get; init; }

    public bool EmitTest { get; init; }

    public string? Known { get; init; }

    public required string Coverage { get; init; }

    public double CaseTime { get; init; }

    public long CaseMemory { get; init; }
}
