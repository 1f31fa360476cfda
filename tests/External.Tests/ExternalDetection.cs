using System.Diagnostics;
using System.Globalization;
using System.Text;
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

/// <summary>One bug of a sample's catalog: what the campaign found, and how its reduced case did on the clean sample.</summary>
internal sealed record CatalogRow(string Bug, ExternalDetectionResult Result, CaseStatus? OnSample);

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

    /// <summary>
    /// The release gate as <c>eptfuzz gate</c> runs it on a build (the whole corpus plus the
    /// fixed-seed random set of 200): every case passes or is unsupported for what the build does
    /// not declare, and at least <paramref name="minimumPassed"/> pass (the gate is not passed by skipping).
    /// </summary>
    public void Gate(string executable, int minimumPassed, Action<string> log)
    {
        var started = new List<ExternalTarget>();
        try
        {
            RunOptions options = Options(executable, started);
            var (files, errors) = CorpusReplay.FindCases([Path.Combine(RepositoryRoot.Path, "corpus")]);
            Assert.Empty(errors);
            var results = files.Select(f => CorpusReplay.RunFile(f, options)).ToList();
            var generated = RandomSet.Generate(RandomSet.DefaultSeed, 200, new GeneratorProfile { Features = options.Features });
            results.AddRange(generated.Select(c => CaseRunner.Run(c, options)));

            var failed = results.Where(r => r.Status is not (CaseStatus.Passed or CaseStatus.Unsupported)).ToList();
            int passed = results.Count(r => r.Status == CaseStatus.Passed);
            log($"{Label}: {results.Count} cases: {passed} passed, {results.Count(r => r.Status == CaseStatus.Unsupported)} unsupported, {failed.Count} other");
            Assert.True(failed.Count == 0, string.Join(Environment.NewLine, failed.Select(r => $"{r.File}: {r.Status} {r.Message}")));
            Assert.True(passed >= minimumPassed, $"only {passed} cases ran to a pass");
        }
        finally
        {
            Dispose(started);
        }
    }

    /// <summary>
    /// What a catalog run failed: a bug missed within the budget, a reduced finding over
    /// <paramref name="maxReducedSteps"/> steps or one that does not pass on the clean sample (so
    /// it is not the bug's doing), and whatever <paramref name="check"/> says of a found bug (its
    /// fault kind, its message).
    /// </summary>
    public static List<string> CatalogFailures(IEnumerable<CatalogRow> rows, int maxReducedSteps, Func<string, FindingRecord, ExternalDetectionResult, string?> check)
    {
        var failures = new List<string>();
        foreach (var (bug, r, onSample) in rows)
        {
            if (r.Finding is not { } f || r.Reduced is not { } reduced)
            {
                failures.Add($"{bug}: missed within {Budget} executions");
                continue;
            }

            if (reduced.Steps.Length > maxReducedSteps)
            {
                failures.Add($"{bug}: the reduced finding has {reduced.Steps.Length} steps (at most {maxReducedSteps})");
            }

            if (onSample != CaseStatus.Passed)
            {
                failures.Add($"{bug}: the reduced finding ({f.Signature}) does not pass on the sample ({onSample})");
            }

            if (check(bug, f, r) is { } failure)
            {
                failures.Add($"{bug}: {failure}");
            }
        }

        return failures;
    }

    /// <summary>The executions-to-detect table (markdown) of a catalog run, with the settings it ran under.</summary>
    public string Table(IEnumerable<CatalogRow> rows)
    {
        var text = new StringBuilder();
        string timeout = CommandTimeout is { } t ? $", command timeout {t.TotalSeconds:0.#} s" : string.Empty;
        text.AppendLine(CultureInfo.InvariantCulture, $"Seed 0x{Seed:x}, budget {Budget} executions per bug, one worker, reduction cap {ReduceCap.TotalSeconds:0} s{timeout}.");
        text.AppendLine();
        text.AppendLine("| bug | executions to detect | signature | reduced steps | seconds |");
        text.AppendLine("|---|---:|---|---:|---:|");
        foreach (var (bug, r, _) in rows)
        {
            string executions = r.Finding is { } f ? f.FoundAtExecution.ToString(CultureInfo.InvariantCulture) : $"missed ({r.Executions})";
            string signature = r.Finding is { } g ? $"`{g.Signature.Replace("|", "\\|", StringComparison.Ordinal)}`" : "-";
            string steps = r.Reduced is { } c ? c.Steps.Length.ToString(CultureInfo.InvariantCulture) : "-";
            text.AppendLine(CultureInfo.InvariantCulture, $"| {bug} | {executions} | {signature} | {steps} | {r.Elapsed.TotalSeconds:0.0} |");
        }

        return text.ToString();
    }

    /// <summary>The clean sample, fuzzed over the whole budget, shows nothing.</summary>
    public void ShowsNothing(string sample, string outDir, Action<string> log)
    {
        ExternalDetectionResult r = Run("sample", sample, outDir, stopAtFirst: false);
        log($"sample: {r.Executions} executions in {r.Elapsed.TotalSeconds:0.0} s, first finding: {r.Finding?.Signature ?? "none"}");
        Assert.True(r.Finding is null, $"the sample diverged at execution {r.Finding?.FoundAtExecution}: {r.Finding?.Signature}\n{r.Finding?.Message}\n{r.ReducedText}");
        Assert.Equal(Budget, r.Executions);
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
