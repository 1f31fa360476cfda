using System.Diagnostics;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Targets.Model;

namespace EptFuzz.Mutants.Tests;

/// <summary>What one fuzzing campaign against one compiled implementation found.</summary>
public sealed record DetectionResult
{
    public required string Name { get; init; }

    /// <summary>The first finding, or null when the budget ran out without one.</summary>
    public FindingRecord? Finding { get; init; }

    /// <summary>Every finding of the campaign (one unless it ran to the end of its budget).</summary>
    public IReadOnlyList<FindingRecord> Findings { get; init; } = [];

    /// <summary>Cases that showed a divergence listed as known.</summary>
    public long KnownDivergences { get; init; }

    /// <summary>The reduced case of <see cref="Finding"/> as written to findings/HASH.ept, parsed back.</summary>
    public EptCase? Reduced { get; init; }

    /// <summary>The reduced case of every finding, in the order of <see cref="Findings"/>.</summary>
    public IReadOnlyList<EptCase> ReducedAll { get; init; } = [];

    /// <summary>Executions the campaign ran in all (the budget when nothing was found).</summary>
    public long Executions { get; init; }

    public TimeSpan Elapsed { get; init; }

    public bool Detected => Finding is not null;
}

/// <summary>
/// Runs the fuzzer's own <see cref="Campaign"/> against a compiled implementation: the real model is
/// the baseline, the compiled hypervisor builds the tables and the compiled virtual CPU is the
/// second translator (what <c>eptfuzz fuzz</c> does with its default <c>--targets model,impl</c>).
/// Everything is the campaign's default except what is set here: a fixed seed, a runs budget, a
/// shorter reduction cap, and a stop as soon as the first finding is reduced. One worker (the
/// default, stated here because the execution count depends on it): cases then follow from the
/// seed, except where the campaign's parent choice reads case durations.
/// </summary>
public static class Detection
{
    /// <summary>The campaign seed every variant is fuzzed with.</summary>
    public const ulong Seed = 0x5EED_E97F;

    /// <summary>Cases per variant before it counts as missed.</summary>
    public const long Budget = 25_000;

    /// <summary>Time cap for reducing the finding (the campaign's default is 60 s).</summary>
    public static readonly TimeSpan ReduceCap = TimeSpan.FromSeconds(30);

    public static RunOptions Options(CompiledImpl impl, KnownDivergences? known = null)
    {
        ArgumentNullException.ThrowIfNull(impl);
        return new RunOptions
        {
            Hypervisor = impl.CreateHypervisor,
            Targets = [new ModelTarget(), impl.CreateTarget()],
            Known = known ?? KnownDivergences.None,
        };
    }

    /// <summary>
    /// Fuzzes <paramref name="impl"/> for at most <paramref name="budget"/> cases; divergences listed
    /// in <paramref name="known"/> are counted, not found (as <c>--known</c> does). With
    /// <paramref name="stopAtFirst"/> the campaign stops once its first finding is reduced.
    /// </summary>
    /// <summary>
    /// The feedback the campaigns use: the campaign's default, or EPTFUZZ_MUTANT_COVERAGE (a
    /// <c>--coverage</c> value) for the README's comparison of feedback modes.
    /// </summary>
    public static CoverageKinds Feedback { get; } =
        Environment.GetEnvironmentVariable("EPTFUZZ_MUTANT_COVERAGE") is { Length: > 0 } text
            ? CoverageKindsText.TryParse(text, out CoverageKinds k, out string error) ? k : throw new InvalidOperationException($"EPTFUZZ_MUTANT_COVERAGE: {error}")
            : CoverageKinds.Default;

    /// <param name="feedback">The campaign's <c>--coverage</c> (default <see cref="Feedback"/>); with <see cref="CoverageKinds.Code"/> it needs <paramref name="code"/>.</param>
    /// <param name="code">The same variant instrumented (<see cref="InstrumentedMutant"/>), whose copies the workers run.</param>
    public static DetectionResult Run(CompiledImpl impl, string outDir, long budget, KnownDivergences known, bool stopAtFirst, CoverageKinds? feedback = null, InstrumentedMutant? code = null)
    {
        ArgumentNullException.ThrowIfNull(impl);
        CoverageKinds coverage = feedback ?? Feedback;
        if ((coverage & CoverageKinds.Code) != 0 && code is null)
        {
            throw new ArgumentException("code coverage needs the instrumented variant", nameof(code));
        }

        var clock = Stopwatch.StartNew();
        var options = new CampaignOptions
        {
            OutDir = outDir,
            Targets = () => Options(impl, known),
            Seed = Seed,
            Runs = budget,
            Jobs = 1,
            Coverage = coverage,
            CodeCoverage = (coverage & CoverageKinds.Code) != 0 ? code!.With(known) : null,
            ReduceCap = ReduceCap,
            // Status ticks only decide how soon the campaign stops after its first finding.
            StatusInterval = TimeSpan.FromMilliseconds(100),
            CommandLine = $"mutant {impl.Name}: eptfuzz fuzz --seed 0x{Seed:x} --runs {budget} --jobs 1 --coverage {CoverageKindsText.Format(coverage)}",
        };
        using var stop = new CancellationTokenSource();
        CampaignSummary summary = new Campaign(options).Run(stop.Token, stopAtFirst ? new StopAtFirstReducedFinding(stop, outDir) : null);
        List<FindingRecord> findings = [.. summary.Findings.Where(f => f.Hash.Length > 0).OrderBy(f => f.FoundAtExecution)];
        List<EptCase> reduced = [.. findings.Select(f => ReadReduced(outDir, f))];

        return new DetectionResult
        {
            Name = impl.Name,
            Finding = findings.FirstOrDefault(),
            Findings = findings,
            KnownDivergences = summary.Final.KnownDivergences,
            Reduced = reduced.FirstOrDefault(),
            ReducedAll = reduced,
            Executions = summary.Final.Executions,
            Elapsed = clock.Elapsed,
        };
    }

    private static EptCase ReadReduced(string outDir, FindingRecord f)
    {
        string path = Path.Combine(outDir, f.ReducedPath);
        ParseResult parsed = CaseParser.Parse(File.ReadAllBytes(path), path);
        return parsed.Succeeded ? parsed.Case : throw new InvalidOperationException($"the reduced finding does not parse: {parsed.ErrorText()}");
    }

    /// <summary>Replays a case (the one verdict path every command uses: a throwing hypervisor is a crash finding).</summary>
    public static CaseResult Replay(EptCase c, CompiledImpl impl) => CaseRunner.Run(c, Options(impl));

    /// <summary>
    /// Cancels the campaign at the first status after its first finding was reduced and written
    /// (findings/HASH.ept, written atomically after the raw file); called on the campaign's own
    /// thread. Cancelling earlier would also cut the reduction short.
    /// </summary>
    private sealed class StopAtFirstReducedFinding(CancellationTokenSource stop, string outDir) : IProgress<CampaignStatus>
    {
        public void Report(CampaignStatus value)
        {
            string findings = Path.Combine(outDir, "findings");
            if (value.Findings > 0 && Directory.Exists(findings)
                && Directory.EnumerateFiles(findings, "*.ept").Any(f => !f.EndsWith(".raw.ept", StringComparison.Ordinal)))
            {
                stop.Cancel();
            }
        }
    }
}
