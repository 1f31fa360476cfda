using System.Globalization;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>Everything <c>eptfuzz fuzz</c> takes. Limits apply to this invocation; counters are cumulative over resumes.</summary>
public sealed record CampaignOptions
{
    /// <summary><c>--out DIR</c>: queue/, findings/, hangs/, stats.json, events.jsonl.</summary>
    public required string OutDir { get; init; }

    /// <summary>Fresh run options (a hypervisor factory and fresh targets) per worker; the CLI builds them from <c>--targets</c>.</summary>
    public required Func<RunOptions> Targets { get; init; }

    /// <summary><c>--seed S</c>: the campaign seed; case seeds derive from it, the shard and the case index.</summary>
    public ulong Seed { get; init; }

    /// <summary><c>--max-total-time SEC</c> for this invocation; null = no limit.</summary>
    public TimeSpan? MaxTotalTime { get; init; }

    /// <summary><c>--runs N</c>: cases to run in this invocation; null = no limit.</summary>
    public long? Runs { get; init; }

    /// <summary><c>--jobs N</c>: workers on this machine.</summary>
    public int Jobs { get; init; } = 1;

    /// <summary><c>--corpus DIR</c>: .ept seeds to start from (expectations are dropped: mutants are differential).</summary>
    public string? CorpusDir { get; init; }

    /// <summary><c>--resume</c>: continue the campaign in <see cref="OutDir"/>.</summary>
    public bool Resume { get; init; }

    /// <summary><c>--shard K/N</c>.</summary>
    public Shard Shard { get; init; } = Shard.Single;

    public GeneratorProfile Profile { get; init; } = GeneratorProfile.Default;

    /// <summary>Time cap for reducing one finding (<c>--reduce-time</c>).</summary>
    public TimeSpan ReduceCap { get; init; } = Reducer.DefaultCap;

    /// <summary>Also write <c>findings/HASH.test.cs</c>, an xunit regression test.</summary>
    public bool EmitRegressionTests { get; init; }

    /// <summary>The expression the emitted tests use for their run options.</summary>
    public string RegressionOptionsExpression { get; init; } = RegressionTestEmitter.DefaultOptionsExpression;

    /// <summary>How often a status is reported, written to stats.json and logged in events.jsonl.</summary>
    public TimeSpan StatusInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// <c>--case-time</c>, <c>--case-memory</c>: a case (generated, mutated, a corpus seed) whose
    /// planned cost exceeds it is refused before it runs, as replay and gate refuse it, and counted
    /// in <see cref="CampaignStatus.RejectedOverBudget"/>. A campaign does not time a running case
    /// out (it cannot be interrupted in-process): one running past <see cref="HangThreshold"/> is a hang.
    /// </summary>
    public CaseBudget Budget { get; init; } = CaseBudget.Default;

    /// <summary>A case that runs longer than this is copied to hangs/.</summary>
    public TimeSpan HangThreshold { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Percent of iterations that generate a fresh case instead of mutating a kept one.</summary>
    public int FreshPercent { get; init; } = 25;

    /// <summary>Cases in a row that a target could not run (infrastructure failures) before the campaign stops with exit status 3.</summary>
    public int MaxConsecutiveInfrastructureFailures { get; init; } = 10;

    /// <summary>Write each case to queue/.current-W.ept before it runs (see README: cheap, crash-safe slot).</summary>
    public bool WriteCurrentCase { get; init; } = true;

    /// <summary>
    /// How many rules the model implements, for "rules hit / rules modelled". The contract only
    /// carries rule names, so the CLI (which may name the model) passes the model's own count;
    /// null means the number of rule names the rule-reporting target lists.
    /// </summary>
    public int? RulesModelled { get; init; }

    /// <summary>The feedback that guides the campaign (<c>--coverage</c>).</summary>
    public CoverageKinds Coverage { get; init; } = CoverageKinds.Default;

    /// <summary>
    /// Reads the implementation's code coverage after each execution (the SharpFuzz trace map);
    /// null when the implementation is not instrumented. Needed for <see cref="CoverageKinds.Code"/>.
    /// </summary>
    public ICodeCoverageSource? CodeCoverage { get; init; }

    /// <summary>The command line, recorded in finding headers ("found by").</summary>
    public string CommandLine { get; init; } = "eptfuzz fuzz";

    /// <summary>Parses a <c>--seed</c> value: decimal or 0x-hex, <c>_</c> allowed, 64 bits.</summary>
    public static bool TryParseSeed(string text, out ulong seed, out string error)
    {
        ArgumentNullException.ThrowIfNull(text);
        seed = 0;
        string digits = text.Replace("_", string.Empty, StringComparison.Ordinal);
        bool hex = digits.StartsWith("0x", StringComparison.OrdinalIgnoreCase);
        bool ok = hex
            ? digits.Length > 2 && ulong.TryParse(digits.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out seed)
            : ulong.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out seed);
        error = ok ? string.Empty : $"--seed expects a 64-bit number, decimal or 0x-hex (for example 0x5eed), found '{text}'";
        return ok;
    }

    /// <summary>Null when usable, else a message naming the flag.</summary>
    public string? Validate()
    {
        if (string.IsNullOrWhiteSpace(OutDir))
        {
            return "--out: an output directory is required";
        }

        if (Jobs is < 1 or > 256)
        {
            return string.Create(CultureInfo.InvariantCulture, $"--jobs must be 1 to 256, found {Jobs}");
        }

        if (Runs is < 0)
        {
            return string.Create(CultureInfo.InvariantCulture, $"--runs must not be negative, found {Runs}");
        }

        if (MaxTotalTime is { } t && t < TimeSpan.Zero)
        {
            return "--max-total-time must not be negative";
        }

        if (ReduceCap < TimeSpan.Zero)
        {
            return "--reduce-time must not be negative";
        }

        if (Shard.Count < 1 || Shard.Index < 1 || Shard.Index > Shard.Count)
        {
            return $"--shard {Shard}: K must be 1 to N";
        }

        if (FreshPercent is < 0 or > 100)
        {
            return "the fresh-case percentage must be 0 to 100";
        }

        if (MaxConsecutiveInfrastructureFailures < 1)
        {
            return "the limit of infrastructure failures in a row must be at least 1";
        }

        if (StatusInterval <= TimeSpan.Zero)
        {
            return "the status interval must be positive";
        }

        if (CorpusDir is { } c && !Directory.Exists(c))
        {
            return $"--corpus {c}: no such directory";
        }

        if ((Coverage & CoverageKinds.Code) != 0 && CodeCoverage is null)
        {
            return "--coverage code: the implementation is not instrumented (build it with SharpFuzz: see README, Guidance)";
        }

        return Profile.Validate();
    }
}

/// <summary>A status: the numbers of the status line, cumulative over resumes.</summary>
public sealed record CampaignStatus
{
    public long Executions { get; init; }

    /// <summary>Executions per second in this invocation.</summary>
    public double ExecPerSecond { get; init; }

    /// <summary>Probes (accesses, entry reads, VM entries) the executions ran.</summary>
    public long Probes { get; init; }

    /// <summary>Probes per second in this invocation, over the same seconds as <see cref="ExecPerSecond"/>.</summary>
    public double ProbesPerSecond { get; init; }

    public int RulesHit { get; init; }

    public int RulesModelled { get; init; }

    /// <summary>Value classes hit so far, of <see cref="ValueClasses.Count"/>.</summary>
    public int ClassesHit { get; init; }

    /// <summary>Code edges reached (0 without code coverage).</summary>
    public int CodeEdges { get; init; }

    /// <summary>Every coverage feature set (rules, pairs, transitions, outcomes).</summary>
    public int Features { get; init; }

    /// <summary>The working set: queue entries that keep every feature found.</summary>
    public int CorpusSize { get; init; }

    /// <summary>Queue entries ever kept (the working set plus the culled ones).</summary>
    public int QueueSize { get; init; }

    /// <summary>Distinct divergence signatures.</summary>
    public int Findings { get; init; }

    /// <summary>Findings seen again with a known signature (counted, not re-reduced).</summary>
    public long Duplicates { get; init; }

    public long KnownDivergences { get; init; }

    /// <summary>Cases refused as bad input: by a target (e.g. more table pages than the pool allows) or by their planned cost.</summary>
    public long Rejected { get; init; }

    /// <summary>Of <see cref="Rejected"/>: cases refused before running because their planned cost exceeds <see cref="CampaignOptions.Budget"/>.</summary>
    public long RejectedOverBudget { get; init; }

    public long InfrastructureFailures { get; init; }

    public long Hangs { get; init; }

    /// <summary>Total campaign time, over resumes.</summary>
    public TimeSpan Elapsed { get; init; }

    /// <summary>One plain status line.</summary>
    public string Line() => string.Create(
        CultureInfo.InvariantCulture,
        $"[{(int)Elapsed.TotalHours:00}:{Elapsed:mm\\:ss}] execs {Executions} ({ExecPerSecond:0}/s)  probes {Probes} ({ProbesPerSecond:0}/s)  rules {RulesHit}/{RulesModelled}  classes {ClassesHit}/{ValueClasses.Count}  edges {CodeEdges}  features {Features}  corpus {CorpusSize}  findings {Findings} (+{Duplicates} dup)  rejected {Rejected} ({RejectedOverBudget} over budget)  infra {InfrastructureFailures}  hangs {Hangs}");
}

/// <summary>One distinct finding (a divergence signature).</summary>
public sealed record FindingRecord
{
    public required string Signature { get; init; }

    public required string Hash { get; init; }

    /// <summary>Times seen (the first included).</summary>
    public long Count { get; init; } = 1;

    /// <summary>The seed of the generated case it came from (a mutant: the iteration's seed; 0: unknown).</summary>
    public ulong CaseSeed { get; init; }

    /// <summary>The case was a mutant (its seed does not regenerate it); false for a generated case.</summary>
    public bool Mutant { get; init; }

    public int StepsBefore { get; init; }

    public int StepsAfter { get; init; }

    public double ReduceSeconds { get; init; }

    /// <summary>Campaign time when it was first seen.</summary>
    public double FoundAtSeconds { get; init; }

    public long FoundAtExecution { get; init; }

    /// <summary>The first line of the divergence (each side's outcome).</summary>
    public string Message { get; init; } = string.Empty;

    /// <summary>Relative to the campaign directory.</summary>
    public string ReducedPath => $"findings/{Hash}.ept";

    public string RawPath => $"findings/{Hash}.raw.ept";
}

/// <summary>How a campaign ended.</summary>
public sealed record CampaignSummary
{
    public required CampaignStatus Final { get; init; }

    public required IReadOnlyList<FindingRecord> Findings { get; init; }

    public required string OutDir { get; init; }

    /// <summary>runs, time, cancelled.</summary>
    public required string StopReason { get; init; }

    /// <summary>The campaign stopped early because a target could not run or the file system failed (<see cref="StopReason"/> says which).</summary>
    public bool StoppedByInfrastructure { get; init; }

    /// <summary>Corpus files that could not be used, with their located errors.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>Exit code: 3 when the campaign was stopped by its infrastructure, else 1 when it has findings, 3 when a target failed, else 0.</summary>
    public int ExitCode => StoppedByInfrastructure ? ExitCodes.Infrastructure
        : Findings.Count > 0 ? ExitCodes.Divergence
        : Final.InfrastructureFailures > 0 ? ExitCodes.Infrastructure
        : ExitCodes.Ok;
}
