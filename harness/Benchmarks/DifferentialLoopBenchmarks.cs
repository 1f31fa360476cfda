using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;

namespace EptFuzz.Benchmarks;

/// <summary>
/// The whole differential loop, as a fuzzing worker runs it minus coverage and the slot file:
/// generate a 64-step case (default profile, seeds <c>Prng.Derive(0x5eed, i)</c> for the first
/// <see cref="Cases"/> indices, as a campaign with --seed 0x5eed draws them), run it on model and
/// impl with the intent checks, compare every probe. The time is per case; the set-up prints how
/// many probes and accesses the set holds, so per-access rates follow.
/// Two jobs: <c>Launcher</c> runs with the garbage-collector setting that <c>./eptfuzz</c> gives
/// every campaign (a 64 MiB gen0 budget, which the runtime reads only from the environment), so it
/// measures the loop as a worker runs it; <c>RuntimeDefaults</c> without it, for comparison.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(LoopJobs))]
public class DifferentialLoopBenchmarks
{
    /// <summary>The value <c>./eptfuzz</c> exports unless the caller sets its own.</summary>
    public const string LauncherGen0Size = "0x4000000";

    private sealed class LoopJobs : ManualConfig
    {
        public LoopJobs()
        {
            // An iteration is one pass over the 1,000 cases (about 50 ms). Twenty warm-up passes
            // give tiered compilation time to finish even when the machine is busy: with six,
            // a loaded run measured partly unoptimized code (3-4x slower, more allocated).
            Job loop = Job.Default.WithStrategy(RunStrategy.Monitoring).WithLaunchCount(1).WithWarmupCount(20).WithIterationCount(30);
            AddJob(loop.WithEnvironmentVariables(new EnvironmentVariable("DOTNET_GCgen0size", LauncherGen0Size)).WithId("Launcher"));
            AddJob(loop.WithId("RuntimeDefaults"));
        }
    }

    private const int Cases = 1000;
    private const ulong CampaignSeed = 0x5eed;

    private RunOptions options = null!;

    /// <summary>
    /// Default: the campaign's mix (about 19 accesses in 64 steps). ProbeHeavy: probes weigh 400
    /// against operations' 42, so most steps are accesses to the tables the first operations
    /// built: the loop's per-access rate.
    /// </summary>
    [ParamsSource(nameof(Mixes))]
    public string Mix { get; set; } = "Default";

    /// <summary>
    /// Names a directory of <c>.ept</c> files: the mix <c>Replayed</c> then runs its first
    /// <see cref="Cases"/> files (by name) instead of generated cases, without generating. The same
    /// files run through two builds (this round's and a previous round's) compare the runners on
    /// the same work, which generated cases cannot once the generator changes.
    /// </summary>
    public const string CasesVariable = "EPTFUZZ_LOOP_CASES";

    public static IEnumerable<string> Mixes() =>
        Environment.GetEnvironmentVariable(CasesVariable) is { Length: > 0 } ? ["Default", "ProbeHeavy", "Replayed"] : ["Default", "ProbeHeavy"];

    /// <summary>The cases of the Replayed mix, parsed once.</summary>
    private EptCase[] replayed = [];

    private GeneratorProfile Profile => Mix == "ProbeHeavy" ? GeneratorProfile.Default with { ProbeWeight = 400 } : GeneratorProfile.Default;

    [GlobalSetup]
    public void Setup()
    {
        options = new RunOptions
        {
            Hypervisor = () => new EptFuzz.Impl.Hypervisor.EptHypervisor(),
            Targets = [new EptFuzz.Targets.Model.ModelTarget(), new EptFuzz.Impl.Target.ImplTarget()],
        };
        if (Mix == "Replayed")
        {
            string dir = Environment.GetEnvironmentVariable(CasesVariable)!;
            replayed = [.. Directory.EnumerateFiles(dir, "*.ept").Order(StringComparer.Ordinal).Take(Cases).Select(f =>
                CaseFile.Read(f) is { Succeeded: true } parsed ? parsed.Case : throw new InvalidOperationException($"{f} does not parse"))];
            if (replayed.Length < Cases)
            {
                throw new InvalidOperationException($"{CasesVariable}={dir} holds {replayed.Length} cases, {Cases} needed");
            }
        }

        long probes = 0;
        long accesses = 0;
        for (int i = 0; i < Cases; i++)
        {
            EptCase c = Case(i);
            CaseResult r = CaseRunner.Run(c, options);
            if (r.Status != CaseStatus.Passed)
            {
                throw new InvalidOperationException($"case {i} did not pass: {r.Message}");
            }

            probes += r.Counters.Probes;
            accesses += c.Steps.Count(s => s is AccessStep);
        }

        Console.WriteLine($"// differential loop ({Mix}): {Cases} cases, {probes} probes ({(double)probes / Cases:0.0} a case), {accesses} accesses ({(double)accesses / Cases:0.0} a case)");
    }

    [Benchmark(OperationsPerInvoke = Cases)]
    public int GenerateRunCompare()
    {
        int passed = 0;
        for (int i = 0; i < Cases; i++)
        {
            EptCase c = Case(i);
            passed += CaseRunner.Run(c, options).Status == CaseStatus.Passed ? 1 : 0;
        }

        return passed;
    }

    private EptCase Case(int i) => Mix == "Replayed" ? replayed[i] : CaseGenerator.Generate(Prng.Derive(CampaignSeed, (ulong)i), Profile);
}
