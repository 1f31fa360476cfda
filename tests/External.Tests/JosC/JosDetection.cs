using System.Diagnostics;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.External;
using EptFuzz.Targets.Model;

namespace EptFuzz.External.Tests.JosC;

/// <summary>What one campaign against one build of jos-c found.</summary>
internal sealed record JosDetectionResult(string Name, FindingRecord? Finding, EptCase? Reduced, long Executions, TimeSpan Elapsed);

/// <summary>
/// Runs the fuzzer's own <see cref="Campaign"/> against a build of jos-c as <c>eptfuzz fuzz
/// --targets model,impl,exec:BUILD</c> does: the target builds the tables; the model, the in-tree
/// virtual CPU (which caches translations, so a missing INVEPT shows) and the target's own lookup
/// translate. Defaults everywhere but a fixed seed, a runs budget, one worker, a shorter
/// reduction cap and command timeout, and a stop once the first finding is reduced.
/// </summary>
internal static class JosDetection
{
    public const ulong Seed = 0x5EED_E97F;

    /// <summary>Cases per bug before it counts as missed.</summary>
    public const long Budget = 25_000;

    public static readonly TimeSpan ReduceCap = TimeSpan.FromSeconds(30);

    /// <summary>
    /// A command may take this long before the target counts as hung (the default is 2 s). The
    /// hang bug is reduced by replaying it, each replay one timeout long.
    /// </summary>
    public static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(1);

    /// <summary>The run options of one worker; the external target is added to <paramref name="started"/> for disposal.</summary>
    public static RunOptions Options(string executable, List<ExternalTarget> started)
    {
        var external = new ExternalTarget(new ExternalTargetOptions { Path = executable, Timeout = CommandTimeout });
        lock (started)
        {
            started.Add(external);
        }

        var translators = new List<EptFuzz.Contract.ITarget> { new ModelTarget(), new ImplTarget() };
        if (external.Walker is { } walker)
        {
            translators.Add(walker);
        }

        return new RunOptions { Hypervisor = external.CreateHypervisor, Features = external.Features, Targets = translators };
    }

    public static JosDetectionResult Run(string name, string executable, string outDir, bool stopAtFirst)
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
                CommandLine = $"jos-c {name}: eptfuzz fuzz --targets model,impl,exec:{executable} --seed 0x{Seed:x} --runs {Budget} --jobs 1 --target-timeout {CommandTimeout.TotalSeconds}",
            };
            using var stop = new CancellationTokenSource();
            CampaignSummary summary = new Campaign(options).Run(stop.Token, stopAtFirst ? new StopAtFirstReducedFinding(stop, outDir) : null);
            FindingRecord? first = summary.Findings.Where(f => f.Hash.Length > 0).OrderBy(f => f.FoundAtExecution).FirstOrDefault();
            return new JosDetectionResult(name, first, first is null ? null : ReadReduced(outDir, first), summary.Final.Executions, clock.Elapsed);
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

    private static EptCase ReadReduced(string outDir, FindingRecord f)
    {
        string path = Path.Combine(outDir, f.ReducedPath);
        ParseResult parsed = CaseParser.Parse(File.ReadAllBytes(path), path);
        return parsed.Succeeded ? parsed.Case : throw new InvalidOperationException($"the reduced finding does not parse: {parsed.ErrorText()}");
    }

    /// <summary>Cancels the campaign at the first status after its first finding was reduced and written.</summary>
    private sealed class StopAtFirstReducedFinding(CancellationTokenSource stop, string outDir) : IProgress<CampaignStatus>
    {
        public void Report(CampaignStatus value)
        {
            string findings = Path.Combine(outDir, "findings");
            if (value.Findings > 0 && System.IO.Directory.Exists(findings)
                && System.IO.Directory.EnumerateFiles(findings, "*.ept").Any(f => !f.EndsWith(".raw.ept", StringComparison.Ordinal)))
            {
                stop.Cancel();
            }
        }
    }
}
