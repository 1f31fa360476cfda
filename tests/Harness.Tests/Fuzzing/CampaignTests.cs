using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Tests.Fuzzing.Support;

namespace EptFuzz.Harness.Tests.Fuzzing;

public sealed class CampaignTests : IDisposable
{
    private const string PlantedSignature = "write.gpa|model:violation|broken:ok|kind";
    private readonly DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-campaign-");

    public void Dispose() => temp.Delete(recursive: true);

    private string Out(string name) => Path.Combine(temp.FullName, name);

    private static CampaignOptions Options(string outDir, long runs, bool planted = true, int jobs = 1) => new()
    {
        OutDir = outDir,
        Targets = () => TestTargets.Options(planted),
        Seed = 0x5eed,
        Runs = runs,
        Jobs = jobs,
        Profile = new GeneratorProfile { Steps = 32 },
        // Status ticks are time-driven; make them rare so that the work is bounded by --runs alone.
        StatusInterval = TimeSpan.FromHours(1),
        CommandLine = "eptfuzz fuzz --seed 0x5eed",
    };

    [Fact]
    public void PlantedDivergence_IsFound_WrittenRawAndReduced_AndReported()
    {
        string dir = Out("planted");
        var summary = new Campaign(Options(dir, 1000) with { EmitRegressionTests = true }).Run(CancellationToken.None);

        FindingRecord f = Assert.Single(summary.Findings, x => x.Signature == PlantedSignature);
        Assert.Equal(1, summary.ExitCode);
        Assert.True(File.Exists(Path.Combine(dir, f.RawPath)));
        Assert.True(File.Exists(Path.Combine(dir, "findings", f.Hash + ".test.cs")));
        var reduced = CaseParser.Parse(File.ReadAllText(Path.Combine(dir, f.ReducedPath)), f.ReducedPath);
        Assert.True(reduced.Succeeded, reduced.ErrorText());
        Assert.InRange(reduced.Case.Steps.Length, 2, 5);
        Assert.Equal(f.StepsAfter, reduced.Case.Steps.Length);
        Assert.True(f.StepsBefore > f.StepsAfter);
        Assert.Equal(PlantedSignature, Running.CaseRunner.Run(reduced.Case, TestTargets.Options(planted: true)).Signature);
        var seedLine = reduced.Case.HeaderComments.Select(FindingOrigin.ParseSeedLine).Single(x => x is not null)!.Value;
        Assert.Equal(f.CaseSeed, seedLine.Seed);
        Assert.Equal(f.Mutant, seedLine.Mutant);
        if (!f.Mutant)
        {
            // A generated case's seed regenerates it: the raw finding is that case.
            var raw = CaseParser.Parse(File.ReadAllText(Path.Combine(dir, f.RawPath)), "raw.ept").Case!;
            var regenerated = CaseGenerator.Generate(f.CaseSeed, new GeneratorProfile { Steps = 32 });
            Assert.Equal(CasePrinter.Print(regenerated), CasePrinter.Print(raw with { HeaderComments = [] }));
        }

        var events = CampaignEvent.ReadAll(dir);
        Assert.Contains(events, e => e.Type == "finding" && e.Signature == PlantedSignature);
        Assert.Equal("stop", events[^1].Type);
        var stats = CampaignStats.Load(dir, out string error);
        Assert.True(stats is not null, error);
        Assert.Equal(1000, stats.Executions);
        Assert.Contains(stats.Findings, x => x.Signature == PlantedSignature && x.Count == f.Count);
        Assert.Equal(summary.Final.Duplicates, stats.Duplicates);
        Assert.Equal(summary.Final.Duplicates + summary.Findings.Count, summary.Findings.Sum(x => x.Count));
        Assert.True(summary.Final.CorpusSize > 0);
        Assert.Equal(summary.Final.CorpusSize, Directory.GetFiles(Path.Combine(dir, "queue"), "id-*.ept").Length);
    }

    [Fact]
    public void WithoutABug_NothingIsFound_AndCoverageIsReported()
    {
        string dir = Out("clean");
        var summary = new Campaign(Options(dir, 300, planted: false)).Run(CancellationToken.None);
        Assert.Empty(summary.Findings);
        Assert.Equal(0, summary.ExitCode);
        Assert.Equal(300, summary.Final.Executions);
        Assert.Equal(WalkingTarget.Rules.Length, summary.Final.RulesModelled);
        Assert.InRange(summary.Final.RulesHit, 10, WalkingTarget.Rules.Length);
        Assert.Contains($"rules {summary.Final.RulesHit}/{WalkingTarget.Rules.Length}", summary.Final.Line(), StringComparison.Ordinal);
        // Every queue entry is a valid case that regenerates or replays.
        foreach (string file in Directory.GetFiles(Path.Combine(dir, "queue"), "id-*.ept"))
        {
            Assert.True(CaseParser.Parse(File.ReadAllText(file), file).Succeeded);
        }

        // The slot holds the last case run, as valid text.
        string slot = Path.Combine(dir, "queue", ".current-0.ept");
        Assert.True(CaseParser.Parse(File.ReadAllText(slot), slot).Succeeded);
    }

    [Fact]
    public void Slot_HoldsALongCaseExactly_AcrossTheBuildersChunks()
    {
        // 600 steps print to more than the worker's 16 KiB builder holds in one chunk.
        string dir = Out("slot");
        new Campaign(Options(dir, 1, planted: false) with { Profile = new GeneratorProfile { Steps = 600 } }).Run(CancellationToken.None);
        string text = File.ReadAllText(Path.Combine(dir, "queue", ".current-0.ept")).TrimEnd('\n') + "\n";
        Assert.True(text.Length > 16 * 1024, $"only {text.Length} characters");
        var parsed = CaseParser.Parse(text, "slot.ept");
        Assert.True(parsed.Succeeded, parsed.ErrorText());
        Assert.Equal(600, parsed.Case!.Steps.Length);
        Assert.Equal(CasePrinter.Print(parsed.Case), text);
    }

    [Fact]
    public void Jobs_RunExactlyTheRequestedNumberOfCases_AndFindTheBug()
    {
        string dir = Out("jobs");
        var summary = new Campaign(Options(dir, 1000, jobs: 3)).Run(CancellationToken.None);
        Assert.Equal(1000, summary.Final.Executions);
        Assert.Contains(summary.Findings, x => x.Signature == PlantedSignature);
        // Duplicates are counted, never reduced twice: one reduced file per signature.
        Assert.Equal(summary.Findings.Count, Directory.GetFiles(Path.Combine(dir, "findings"), "*.raw.ept").Length);
    }

    [Fact]
    public void Resume_AfterAKill_KeepsFindingsAndCounters_AndFinishesInterruptedReductions()
    {
        string dir = Out("resume");
        var first = new Campaign(Options(dir, 1000)).Run(CancellationToken.None);
        FindingRecord f = Assert.Single(first.Findings, x => x.Signature == PlantedSignature);

        // Simulate kill -9 right after the raw finding was written: no reduced file, stats.json
        // from before the finding, and a case left in flight in the slot.
        File.Delete(Path.Combine(dir, f.ReducedPath));
        var stats = CampaignStats.Load(dir, out _)!;
        stats.Findings.RemoveAll(x => x.Signature == PlantedSignature);
        stats.Save(dir);
        long executionsBefore = stats.Executions;
        long probesBefore = stats.Probes;
        Assert.True(probesBefore > 0);

        var second = new Campaign(Options(dir, 300) with { Resume = true }).Run(CancellationToken.None);

        Assert.Contains(second.Findings, x => x.Signature == PlantedSignature);
        Assert.True(File.Exists(Path.Combine(dir, f.ReducedPath)));
        var reduced = CaseParser.Parse(File.ReadAllText(Path.Combine(dir, f.ReducedPath)), "r.ept");
        Assert.True(reduced.Succeeded, reduced.ErrorText());
        // Cumulative: the first session's runs, the queue replayed to rebuild coverage, the slot, and 300 new runs.
        Assert.True(second.Final.Executions >= executionsBefore + 300, $"{second.Final.Executions} < {executionsBefore} + 300");
        // The resume culls the working set, never the queue: every entry is kept, every feature too.
        Assert.True(second.Final.QueueSize >= first.Final.CorpusSize);
        Assert.True(second.Final.Features >= first.Final.Features);
        Assert.True(second.Final.RulesHit >= first.Final.RulesHit);
        var after = CampaignStats.Load(dir, out _)!;
        Assert.True(after.NextCaseIndex >= 1300);
        Assert.True(after.Probes > probesBefore, $"{after.Probes} <= {probesBefore}: the probe counter did not carry over");
        Assert.Equal(second.Final.Probes, after.Probes);
        Assert.Contains(CampaignEvent.ReadAll(dir), e => e.Type == "resume");
    }

    [Fact]
    public void ProbeWeight_ReachesTheGenerator_IsRecorded_AndItsCasesProbeMore()
    {
        var standard = new Campaign(Options(Out("pw-38"), 300, planted: false)).Run(CancellationToken.None);
        var heavy = new Campaign(Options(Out("pw-400"), 300, planted: false) with { Profile = new GeneratorProfile { Steps = 32, ProbeWeight = 400 } }).Run(CancellationToken.None);

        Assert.Equal(GeneratorProfile.DefaultProbeWeight, CampaignStats.Load(Out("pw-38"), out _)!.ProbeWeight);
        Assert.Equal(400, CampaignStats.Load(Out("pw-400"), out _)!.ProbeWeight);
        Assert.Equal(300, standard.Final.Executions);
        Assert.Equal(300, heavy.Final.Executions);
        double perCase = (double)standard.Final.Probes / standard.Final.Executions;
        double heavyPerCase = (double)heavy.Final.Probes / heavy.Final.Executions;
        Assert.True(perCase > 0, "the default campaign counted no probes");
        Assert.True(heavyPerCase > 1.5 * perCase, $"{heavyPerCase:0.0} probes a case with weight 400, {perCase:0.0} with the default");
    }

    [Fact]
    public void ProbeCounter_AddsUpTheCasesProbes_InStatsJsonAndInStatusEvents()
    {
        const int Runs = 200, PauseAt = 120;
        var profile = new GeneratorProfile { Steps = 32 };
        // Every case is generated from its seed (FreshPercent 100), so the test can run the same cases itself.
        long[] prefix = new long[Runs + 1];
        for (int i = 0; i < Runs; i++)
        {
            EptCase c = CaseGenerator.Generate(Campaign.CaseSeed(0x5eed, Shard.Single, (ulong)i), profile);
            prefix[i + 1] = prefix[i] + Running.CaseRunner.Run(c, TestTargets.Options()).Counters.Probes;
        }

        // Case PauseAt waits for statuses, so that some status event is taken at a known point
        // (PauseAt - 1 cases done), whatever the clock does.
        using var pause = new PauseAtCase(PauseAt);
        string dir = Out("probes");
        var options = Options(dir, Runs, planted: false) with
        {
            FreshPercent = 100,
            Profile = profile,
            Targets = () => TestTargets.Options() with
            {
                Hypervisor = () =>
                {
                    pause.Arrive();
                    return new EptFuzz.Impl.Hypervisor.EptHypervisor();
                },
            },
            StatusInterval = TimeSpan.FromMilliseconds(10),
            HangThreshold = TimeSpan.FromHours(1),
        };

        var summary = new Campaign(options).Run(CancellationToken.None, pause);

        Assert.True(prefix[Runs] > 0);
        var stats = CampaignStats.Load(dir, out string error);
        Assert.True(stats is not null, error);
        Assert.Equal(Runs, stats.Executions);
        Assert.Equal(prefix[Runs], stats.Probes);
        Assert.Equal(prefix[Runs], summary.Final.Probes);
        Assert.Equal(prefix[Runs], stats.History[^1].Probes);
        Assert.Contains($"probes {prefix[Runs]} (", summary.Final.Line(), StringComparison.Ordinal);

        var events = CampaignEvent.ReadAll(dir);
        Assert.Equal(prefix[Runs], events[^1].Probes);
        var statuses = events.Where(e => e.Type == "status").ToList();
        Assert.All(statuses, e => Assert.True(e.Probes is not null && e.ProbesPerSecond is not null, "a status event without its probe figures"));
        Assert.True(statuses.Zip(statuses.Skip(1)).All(p => p.First.Probes <= p.Second.Probes), "the probe counter went down");
        Assert.Contains(statuses, e => e.Executions == PauseAt - 1 && e.Probes == prefix[PauseAt - 1]);
        CampaignEvent atPause = statuses.Last(e => e.Executions == PauseAt - 1 && e.Probes == prefix[PauseAt - 1]);
        // Probes/s is this session's probes over this session's seconds, as exec/s is executions over the same seconds.
        Assert.True(atPause.ExecPerSecond > 0);
        Assert.Equal((double)atPause.Probes!.Value / atPause.Executions, atPause.ProbesPerSecond!.Value / atPause.ExecPerSecond!.Value, 9);
    }

    /// <summary>
    /// Holds the case numbered <c>at</c> (counting hypervisors made) until two statuses were
    /// reported while it waited: the first may have been taken just before the worker stopped,
    /// the second was taken after, with every earlier case counted.
    /// </summary>
    private sealed class PauseAtCase(int at) : IProgress<CampaignStatus>, IDisposable
    {
        private readonly ManualResetEventSlim release = new(false);
        private int made;
        private bool waiting;
        private int reportsWhileWaiting;

        public void Arrive()
        {
            if (Interlocked.Increment(ref made) == at)
            {
                Volatile.Write(ref waiting, true);
                release.Wait();
            }
        }

        public void Report(CampaignStatus value)
        {
            if (Volatile.Read(ref waiting) && ++reportsWhileWaiting == 2)
            {
                release.Set();
            }
        }

        public void Dispose() => release.Dispose();
    }

    [Theory]
    [InlineData("full", 32, 400, "--cpu-profile full --steps 32 --probe-weight 400")]
    [InlineData("random", 40, 400, "--cpu-profile random --steps 40 --probe-weight 400")]
    [InlineData("random", 32, 38, "--cpu-profile random --steps 32 --probe-weight 38")]
    public void Resume_RefusesAnotherGeneratorProfile_NamingTheRecordedAndTheGivenValues(string cpu, int steps, int probeWeight, string given)
    {
        string dir = Out("profile");
        var recorded = new GeneratorProfile { Steps = 32, ProbeWeight = 400 };
        new Campaign(Options(dir, 5, planted: false) with { Profile = recorded }).Run(CancellationToken.None);
        string before = File.ReadAllText(CampaignStats.PathIn(dir));

        var changed = new GeneratorProfile { Cpu = GeneratorProfile.ParseCpuProfile(cpu, out _)!.Value, Steps = steps, ProbeWeight = probeWeight };
        var e = Assert.Throws<CampaignUsageException>(() => new Campaign(Options(dir, 5, planted: false) with { Profile = changed, Resume = true }).Run(CancellationToken.None));

        Assert.Equal($"--resume: the campaign in {dir} has --cpu-profile random --steps 32 --probe-weight 400; resume it with the same values (given {given})", e.Message);
        Assert.Equal(before, File.ReadAllText(CampaignStats.PathIn(dir)));
        var resumed = new Campaign(Options(dir, 5, planted: false) with { Profile = recorded, Resume = true }).Run(CancellationToken.None);
        // Cumulative: 5, the queue replayed to rebuild coverage, the slot, and 5 more.
        Assert.True(resumed.Final.Executions >= 10, $"{resumed.Final.Executions} executions");
    }

    [Fact]
    public void StatsJson_FromBeforeTheProbeFields_LoadsAsTheDefaultWeight_AndResumes()
    {
        string dir = Out("old");
        new Campaign(Options(dir, 20, planted: false)).Run(CancellationToken.None);
        // Strip what this version added, as a stats.json written before it would lack it.
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(CampaignStats.PathIn(dir)))!.AsObject();
        Assert.True(json.Remove("probeWeight") && json.Remove("probes"));
        foreach (var point in json["history"]!.AsArray())
        {
            Assert.True(point!.AsObject().Remove("probes") && point.AsObject().Remove("probesPerSecond"));
        }

        File.WriteAllText(CampaignStats.PathIn(dir), json.ToJsonString());

        var old = CampaignStats.Load(dir, out string error);
        Assert.True(old is not null, error);
        Assert.Equal(GeneratorProfile.DefaultProbeWeight, old.ProbeWeight);
        Assert.Equal(0, old.Probes);
        Assert.All(old.History, h => Assert.Equal(0, h.Probes));
        Assert.Equal(20, old.Executions);

        var e = Assert.Throws<CampaignUsageException>(() => new Campaign(Options(dir, 5, planted: false) with { Profile = new GeneratorProfile { Steps = 32, ProbeWeight = 400 }, Resume = true }).Run(CancellationToken.None));
        Assert.Contains("has --cpu-profile random --steps 32 --probe-weight 38;", e.Message, StringComparison.Ordinal);
        var resumed = new Campaign(Options(dir, 5, planted: false) with { Resume = true }).Run(CancellationToken.None);
        Assert.True(resumed.Final.Executions >= 25, $"{resumed.Final.Executions} executions");
        Assert.True(resumed.Final.Probes > 0, "the resumed campaign counted no probes");
    }

    [Fact]
    public void Shards_RunDisjointCases()
    {
        var seeds = new HashSet<ulong>();
        for (int k = 1; k <= 4; k++)
        {
            for (ulong i = 0; i < 2000; i++)
            {
                Assert.True(seeds.Add(Campaign.CaseSeed(0x5eed, new Shard(k, 4), i)), $"shard {k}/4 case {i} repeats a seed");
            }
        }

        // Two shards of the same campaign keep no common generated case.
        var a = new Campaign(Options(Out("s1"), 200, planted: false) with { Shard = new Shard(1, 2), FreshPercent = 100 }).Run(CancellationToken.None);
        var b = new Campaign(Options(Out("s2"), 200, planted: false) with { Shard = new Shard(2, 2), FreshPercent = 100 }).Run(CancellationToken.None);
        Assert.True(a.Final.CorpusSize > 0 && b.Final.CorpusSize > 0);
        var qa = Directory.GetFiles(Path.Combine(Out("s1"), "queue"), "id-*.ept").Select(p => Path.GetFileName(p)[10..]).ToHashSet();
        var qb = Directory.GetFiles(Path.Combine(Out("s2"), "queue"), "id-*.ept").Select(p => Path.GetFileName(p)[10..]).ToHashSet();
        Assert.Empty(qa.Intersect(qb));
    }

    [Fact]
    public void Cancellation_StopsTheCampaign_AndIsReportedAsTheReason()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        string dir = Out("cancelled");
        var summary = new Campaign(Options(dir, 1_000_000, planted: false)).Run(cancelled.Token);
        Assert.Equal("cancelled", summary.StopReason);
        Assert.True(summary.Final.Executions < 1_000_000);
        Assert.Equal("stop", CampaignEvent.ReadAll(dir)[^1].Type);
    }

    [Fact]
    public void ACaseThatDoesNotReturn_IsWrittenToHangsWhileItRuns()
    {
        using var release = new ManualResetEventSlim(false);
        string dir = Out("hang");
        var options = new CampaignOptions
        {
            OutDir = dir,
            Targets = () => new Running.RunOptions { Hypervisor = () => new EptFuzz.Impl.Hypervisor.EptHypervisor(), Targets = [new BlockingTarget(release)], CheckIntent = false },
            Runs = 1,
            HangThreshold = TimeSpan.FromMilliseconds(50),
            StatusInterval = TimeSpan.FromMilliseconds(10),
        };
        // The status after the watchdog recorded the hang lets the case return; nothing else does.
        var progress = new ReleaseWhenHung(release);

        var summary = new Campaign(options).Run(CancellationToken.None, progress);

        Assert.Equal(1, summary.Final.Hangs);
        Assert.Equal(1, summary.Final.Executions);
        string hang = Assert.Single(Directory.GetFiles(Path.Combine(dir, "hangs")));
        var parsed = CaseParser.Parse(File.ReadAllText(hang), hang);
        Assert.True(parsed.Succeeded, parsed.ErrorText());
        Assert.StartsWith("still running after", parsed.Case.HeaderComments[0], StringComparison.Ordinal);
        Assert.Contains(CampaignEvent.ReadAll(dir), e => e.Type == "hang");
    }

    private sealed class ReleaseWhenHung(ManualResetEventSlim release) : IProgress<CampaignStatus>
    {
        public void Report(CampaignStatus value)
        {
            if (value.Hangs > 0)
            {
                release.Set();
            }
        }
    }

    [Fact]
    public void ShardText_IsParsed_AndBadValuesGiveClearMessages()
    {
        Assert.True(Shard.TryParse("2/8", out Shard s, out _));
        Assert.Equal(new Shard(2, 8), s);
        Assert.False(Shard.TryParse("0/8", out _, out string e1));
        Assert.Contains("K must be 1 to N", e1, StringComparison.Ordinal);
        Assert.False(Shard.TryParse("x", out _, out string e2));
        Assert.Contains("K/N", e2, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0x5eed", 0x5eedUL)]
    [InlineData("24301", 24301UL)]
    [InlineData("0xffff_ffff_ffff_ffff", ulong.MaxValue)]
    public void Seeds_AreParsedInDecimalOrHex(string text, ulong expected)
    {
        Assert.True(CampaignOptions.TryParseSeed(text, out ulong seed, out string error), error);
        Assert.Equal(expected, seed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("0x")]
    [InlineData("-1")]
    [InlineData("seed")]
    [InlineData("0x1_0000_0000_0000_0000")]
    public void BadSeeds_GiveAMessageNamingTheFlag(string text)
    {
        Assert.False(CampaignOptions.TryParseSeed(text, out _, out string error));
        Assert.Contains("--seed", error, StringComparison.Ordinal);
    }

    [Fact]
    public void StatusLine_ShowsHoursBeyondADay()
    {
        var s = new CampaignStatus { Elapsed = TimeSpan.FromHours(30) + TimeSpan.FromSeconds(61) };
        Assert.StartsWith("[30:01:01]", s.Line(), StringComparison.Ordinal);
    }

    [Fact]
    public void BadOptions_AreRefusedWithMessagesThatNameTheFlag()
    {
        var e = Assert.Throws<CampaignUsageException>(() => new Campaign(Options(Out("bad"), 1) with { Jobs = 0 }).Run(CancellationToken.None));
        Assert.Contains("--jobs", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<CampaignUsageException>(() => new Campaign(Options(Out("none"), 1) with { Resume = true }).Run(CancellationToken.None));
        Assert.Contains("--resume", e.Message, StringComparison.Ordinal);

        string dir = Out("twice");
        new Campaign(Options(dir, 5, planted: false)).Run(CancellationToken.None);
        e = Assert.Throws<CampaignUsageException>(() => new Campaign(Options(dir, 5, planted: false)).Run(CancellationToken.None));
        Assert.Contains("already holds a campaign", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<CampaignUsageException>(() => new Campaign(Options(dir, 5, planted: false) with { Resume = true, Seed = 1 }).Run(CancellationToken.None));
        Assert.Contains("--seed 0x5eed", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<CampaignUsageException>(() => new Campaign(Options(Out("c"), 5) with { CorpusDir = Out("missing") }).Run(CancellationToken.None));
        Assert.Contains("--corpus", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CorpusSeeds_AreLoaded_AndTheirExpectationsDropped()
    {
        string corpus = Out("corpus");
        Directory.CreateDirectory(corpus);
        File.WriteAllText(Path.Combine(corpus, "a.ept"), "eptcase 1\ncpu\neptp\nmap gpa=0x3fe00000 hpa=0x1000000 size=2M perm=r\nread gpa=0x3fe00000 => ok hpa=0x1000000\n");
        File.WriteAllText(Path.Combine(corpus, "broken.ept"), "eptcase 1\nmap gpa=zzz\n");
        var summary = new Campaign(Options(Out("withcorpus"), 1, planted: false) with { CorpusDir = corpus }).Run(CancellationToken.None);
        Assert.Contains(summary.Warnings, w => w.Contains("broken.ept", StringComparison.Ordinal));
        string first = Directory.GetFiles(Path.Combine(Out("withcorpus"), "queue"), "id-000000-*.ept").Single();
        string text = File.ReadAllText(first);
        Assert.Contains("map gpa=0x3fe00000", text, StringComparison.Ordinal);
        Assert.DoesNotContain("=>", text, StringComparison.Ordinal);
        Assert.Contains(CampaignEvent.ReadAll(Out("withcorpus")), ev => ev.Type == "corpus-rejected");
    }

    [Fact]
    public void CorpusSeedThatDiverges_IsAFinding_AndRejectedSeedsAreCounted()
    {
        string corpus = Out("corpus-diverges");
        Directory.CreateDirectory(corpus);
        // The planted bug lets a write through a read-only page: this seed shows it at once.
        File.WriteAllText(Path.Combine(corpus, "diverges.ept"), "eptcase 1\ncpu\neptp\nmap gpa=0x3fe00000 hpa=0x1000000 size=2M perm=r\nwrite gpa=0x3fe00000\n");
        File.WriteAllText(Path.Combine(corpus, "broken.ept"), "eptcase 1\nmap gpa=zzz\n");
        var summary = new Campaign(Options(Out("seedfinding"), 0, planted: true) with { CorpusDir = corpus }).Run(CancellationToken.None);

        FindingRecord f = Assert.Single(summary.Findings, x => x.Signature == PlantedSignature);
        Assert.True(File.Exists(Path.Combine(Out("seedfinding"), f.ReducedPath)));
        Assert.Equal(1, summary.Final.Rejected);
        Assert.Contains(CampaignEvent.ReadAll(Out("seedfinding")), ev => ev.Type == "corpus-rejected" && ev.Path!.EndsWith("broken.ept", StringComparison.Ordinal));
    }
}
