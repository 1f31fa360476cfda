using System.Diagnostics;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.External;
using EptFuzz.Targets.Model;

namespace EptFuzz.External.Tests.KeosRust;

/// <summary>What one campaign against one build of keos-rust found.</summary>
internal sealed record KeosRustDetectionResult(string Name, FindingRecord? Finding, EptCase? Reduced, string? ReducedText, long Executions, TimeSpan Elapsed);

/// <summary>
/// Runs the fuzzer's own <see cref="Campaign"/> against a build of keos-rust as <c>eptfuzz fuzz
/// --targets model,impl,exec:BUILD</c> does: the target builds the tables; the model, the in-tree
/// virtual CPU (which caches translations, so a missing INVEPT shows) and the target's own lookup
/// (keos-rust.walk) translate. Defaults everywhere but a fixed seed, a runs budget, one worker,
/// a shorter reduction cap, and a stop once the first finding is reduced.
/// </summary>
internal static class KeosRustDetection
{
    public const ulong Seed = 0x5EED_E97F;

    /// <summary>Cases per bug before it counts as missed.</summary>
    public const long Budget = 25_000;

    public static readonly TimeSpan ReduceCap = TimeSpan.FromSeconds(30);

    /// <summary>The run options of one worker; the external target is added to <paramref name="started"/> for disposal.</summary>
    public static RunOptions Options(string executable, List<ExternalTarget> started)
    {
        var external = new ExternalTarget(new ExternalTargetOptions { Path = executable });
        lock (started)
        {
            started.Add(external);
        }

        var translators = new List<ITarget> { new ModelTarget(), new ImplTarget() };
        if (external.Walker is { } walker)
        {
            translators.Add(walker);
        }

        return new RunOptions { Hypervisor = external.CreateHypervisor, Features = external.Features, Targets = translators };
    }

    public static KeosRustDetectionResult Run(string name, string executable, string outDir, bool stopAtFirst)
    {
        var clock = Stopwatch.StartNew();
        var started = new List<ExternalTarget>();
        try
        {
            var features = Options(executable, started).Features;
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
                CommandLine = $"keos-rust {name}: eptfuzz fuzz --targets model,impl,exec:{executable} --seed 0x{Seed:x} --runs {Budget} --jobs 1",
            };
            using var stop = new CancellationTokenSource();
            CampaignSummary summary = new Campaign(options).Run(stop.Token, stopAtFirst ? new StopAtFirstReducedFinding(stop, outDir) : null);
            FindingRecord? first = summary.Findings.Where(f => f.Hash.Length > 0).OrderBy(f => f.FoundAtExecution).FirstOrDefault();
            if (first is null)
            {
                return new KeosRustDetectionResult(name, null, null, null, summary.Final.Executions, clock.Elapsed);
            }

            string text = File.ReadAllText(Path.Combine(outDir, first.ReducedPath));
            return new KeosRustDetectionResult(name, first, Parse(text, first.ReducedPath), text, summary.Final.Executions, clock.Elapsed);
        }
        finally
        {
            foreach (var target in started)
            {
                target.Dispose();
            }
        }
    }

    /// <summary>Replays a case on a build, the way the campaign runs one.</summary>
    public static CaseResult Replay(EptCase c, string executable)
    {
        var started = new List<ExternalTarget>();
        try
        {
            return CaseRunner.Run(c, Options(executable, started));
        }
        finally
        {
            foreach (var target in started)
            {
                target.Dispose();
            }
        }
    }

    private static EptCase Parse(string text, string path)
    {
        ParseResult parsed = CaseParser.Parse(System.Text.Encoding.UTF8.GetBytes(text), path);
        return parsed.Succeeded ? parsed.Case : throw new InvalidOperationException($"the reduced finding does not parse: {parsed.ErrorText()}");
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
