using System.Diagnostics;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.External;
using EptFuzz.Targets.Model;

namespace EptFuzz.External.Tests;

/// <summary>What one campaign against one build of a sample found; the reduced case as text and parsed.</summary>
internal sealed record ExternalDetectionResult(string Name, FindingRecord? Finding, EptCase? Reduced, string? ReducedText, long Executions, TimeSpan Elapsed);

/// <summary>
/// Runs the fuzzer's own <see cref="Campaign"/> against a build of a sample target as <c>eptfuzz
/// fuzz --targets model,impl,exec:BUILD</c> does: the target builds the tables; the model, the
/// in-tree virtual CPU (which caches translations, so a missing INVEPT shows) and the target's own
/// lookup translate. Defaults everywhere but a fixed seed, a runs budget, one worker, a shorter
/// reduction cap, the sample's command timeout, and a stop once the first finding is reduced.
/// The jos-c and keos-rust catalogs both run through here.
/// </summary>
/// <param name="Label">The sample's name, for the campaign's command line.</param>
/// <param name="CommandTimeout">How long a command may take before the target counts as hung; null for the default.</param>
internal sealed record ExternalDetection(string Label, TimeSpan? CommandTimeout)
{
    public const ulong Seed = 0x5EED_E97F;

    /// <summary>Cases per bug before it counts as missed.</summary>
    public const long Budget = 25_000;

    public static readonly TimeSpan ReduceCap = TimeSpan.FromSeconds(30);

    /// <summary>The run options of one worker; the external target is added to <paramref name="started"/> for disposal.</summary>
    public RunOptions Options(string executable, List<ExternalTarget> started)
    {
        var external = new ExternalTarget(CommandTimeout is { } timeout
            ? new ExternalTargetOptions { Path = executable, Timeout = timeout }
            : new ExternalTargetOptions { Path = executable });
        lock (started)
        {
            started.Add(external);
        }

        return OptionsFor(external);
    }

    /// <summary>The run options of a campaign against <paramref name="external"/>: it builds the tables; model, impl and its own lookup translate.</summary>
    public static RunOptions OptionsFor(ExternalTarget external)
    {
        var translators = new List<ITarget> { new ModelTarget(), new ImplTarget() };
        if (external.Walker is { } walker)
        {
            translators.Add(walker);
        }

        return new RunOptions { Hypervisor = external.CreateHypervisor, Features = external.Features, Targets = translators };
    }

    public ExternalDetectionResult Run(string name, string executable, string outDir, bool stopAtFirst)
    {
        var clock = Stopwatch.StartNew();
        var started = new List<ExternalTarget>();
        try
        {
            var features = Options(executable, started).Features;
            string timeoutFlag = CommandTimeout is { } t ? $" --target-timeout {t.TotalSeconds}" : string.Empty;
            var options = new CampaignOptions
            {
                OutDir = outDir,
                Targets = () => Options(executable, started),
                Seed = Seed,
                Runs = Budget,
                Jobs = 1,
                ReduceCap = ReduceCap,
                Profile = new GeneratorProfile { Features = features },
                StatusInterval = TimeSpan.FromMilliseconds(100),
                CommandLine = $"{Label} {name}: eptfuzz fuzz --targets model,impl,exec:{executable} --seed 0x{Seed:x} --runs {Budget} --jobs 1{timeoutFlag}",
            };
            using var stop = new CancellationTokenSource();
            CampaignSummary summary = new Campaign(options).Run(stop.Token, stopAtFirst ? new StopAtFirstReducedFinding(stop, outDir) : null);
            FindingRecord? first = summary.Findings.Where(f => f.Hash.Length > 0).OrderBy(f => f.FoundAtExecution).FirstOrDefault();
            if (first is null)
            {
                return new ExternalDetectionResult(name, null, null, null, summary.Final.Executions, clock.Elapsed);
            }

            string path = Path.Combine(outDir, first.ReducedPath);
            string text = File.ReadAllText(path);
            ParseResult parsed = CaseParser.Parse(System.Text.Encoding.UTF8.GetBytes(text), path);
            return parsed.Succeeded
                ? new ExternalDetectionResult(name, first, parsed.Case, text, summary.Final.Executions, clock.Elapsed)
                : throw new InvalidOperationException($"the reduced finding does not parse: {parsed.ErrorText()}");
        }
        finally
        {
            Dispose(started);
        }
    }

    /// <summary>Replays a case on a build, the way the campaign runs one.</summary>
    public CaseResult Replay(EptCase c, string executable)
    {
        var started = new List<ExternalTarget>();
        try
        {
            return CaseRunner.Run(c, Options(executable, started));
        }
        finally
        {
            Dispose(started);
        }
    }

    public static void Dispose(List<ExternalTarget> started)
    {
        foreach (var target in started)
        {
            target.Dispose();
        }
    }

    /// <summary>Cancels the campaign at the first status after its first finding was reduced and written.</summary>
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
