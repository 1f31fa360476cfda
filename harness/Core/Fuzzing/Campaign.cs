using System.Diagnostics;
using System.Text;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>A usage problem with a campaign (bad flag, resuming what is not there): exit status 2.</summary>
public sealed class CampaignUsageException(string message) : Exception(message);

/// <summary>
/// A fuzzing campaign: N workers generate or mutate cases, run them, keep the ones that reach new
/// coverage in queue/, and write each new divergence to findings/ (raw first, then reduced),
/// atomically, before reporting it. Counters are cumulative over <c>--resume</c>.
/// </summary>
/// <remarks>
/// Case i of shard K/N has seed <c>Prng.Derive(seed, i*N + K-1)</c>; workers claim case indices
/// from one counter, so the set of seeds run does not depend on --jobs, and shards never overlap.
/// Workers share nothing mutable but the corpus list, the coverage union and the finding table,
/// each behind its own lock.
/// </remarks>
public sealed partial class Campaign
{
    private readonly CampaignOptions options;
    private readonly CampaignFiles files;
    /// <summary>Writes queue entries and a cull's moves off the workers' loop (<see cref="QueueWriter"/>); made by Run.</summary>
    private QueueWriter queueWriter = null!;
    private readonly object corpusGate = new();
    private readonly object findingGate = new();
    private readonly object statsGate = new();
    /// <summary>Kept cases with how long each took to run (parent selection prefers fast ones).</summary>
    /// <summary>The working set (the culled queue): each entry with its coverage features and its file in queue/.</summary>
    private List<CorpusEntry> corpus = [];
    /// <summary>The working set's size after the last cull; the next cull comes when it has doubled.</summary>
    private int lastCulled;
    private readonly Dictionary<string, FindingRecord> findings = new(StringComparer.Ordinal);
    private readonly List<string> warnings = [];
    private readonly Stopwatch session = new();
    private CampaignStats stats = new();
    private CoverageMap coverage = new();
    private Worker[] workers = [];
    private long executions;
    private long sessionStartExecutions;
    /// <summary>Probes the executions ran; added with the same one atomic per case as <see cref="executions"/>.</summary>
    private long probes;
    private long sessionStartProbes;
    private long rejected;
    private long overBudget;
    private long infrastructure;
    private long hangs;
    private long known;
    private long duplicates;
    private long claimed;
    private long nextLocalIndex;
    private int queueCounter;
    private double elapsedBase;
    private TimeSpan lastTick;
    /// <summary>Cancelled to stop the workers (limits, cancellation, a failed worker); also ends a reduction early.</summary>
    private readonly CancellationTokenSource stop = new();
    /// <summary>Reduces and writes each new finding; it runs its cases itself and calls back into nothing.</summary>
    private readonly FindingReduction reduction;
    private Exception? workerFailure;
    /// <summary>Infrastructure failures in a row (reset by any case that ran): past the limit the target cannot run, and the campaign stops.</summary>
    private long consecutiveInfrastructure;
    /// <summary>Why the campaign stopped early for its infrastructure (a target that cannot run, the file system failing); null otherwise.</summary>
    private string? infrastructureStop;

    public Campaign(CampaignOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.options = options;
        files = new CampaignFiles(options.OutDir);
        reduction = new FindingReduction(files, options, stop.Token);
    }

    private bool Stopping => stop.IsCancellationRequested;

    /// <summary>The seed of case <paramref name="localIndex"/> of a shard: disjoint across shards, independent of --jobs.</summary>
    public static ulong CaseSeed(ulong campaignSeed, Shard shard, ulong localIndex) => Prng.Derive(campaignSeed, shard.CaseIndex(localIndex));

    /// <summary>Runs until --runs, --max-total-time or cancellation; throws <see cref="CampaignUsageException"/> for bad options.</summary>
    public CampaignSummary Run(CancellationToken cancellation, IProgress<CampaignStatus>? progress = null)
    {
        if (options.Validate() is { } error)
        {
            throw new CampaignUsageException(error);
        }

        // --max-total-time is wall time from here to the end: loading the queue and the corpus,
        // recovering findings and replaying slots all spend it (the stop token ends them too).
        session.Start();
        if (options.MaxTotalTime is { } max)
        {
            if (max <= TimeSpan.Zero)
            {
                stop.Cancel();
            }
            else
            {
                stop.CancelAfter(max);
            }
        }

        using CancellationTokenRegistration linked = cancellation.Register(stop.Cancel);
        using CampaignLock held = CampaignLock.Acquire(options.OutDir);
        PrepareDirectory();
        queueWriter = new QueueWriter(OnQueueWriteFailed);
        try
        {
            return RunWorkers(cancellation, progress);
        }
        finally
        {
            queueWriter.Dispose();
            files.Dispose();
            stop.Dispose();
        }
    }

    /// <summary>The queue writer's first failure: a failing file system stops the campaign as infrastructure; anything else is a defect, rethrown by Run.</summary>
    private void OnQueueWriteFailed(Exception e)
    {
        if (e is IOException io)
        {
            StopForInfrastructure(IoStopReason(io));
        }
        else
        {
            Interlocked.CompareExchange(ref workerFailure, e, null);
            stop.Cancel();
        }
    }

    private void PrepareDirectory()
    {
        bool exists = CampaignStats.Exists(options.OutDir);
        if (options.Resume)
        {
            stats = CampaignStats.Load(options.OutDir, out string error) ?? throw new CampaignUsageException($"--resume: {error}");
            if (stats.Shard == CampaignMerge.MergedShard)
            {
                throw new CampaignUsageException($"--resume: {options.OutDir} was made by 'eptfuzz merge' and cannot be resumed (its cases come from several seeds and shards); start a new campaign from its queue: eptfuzz fuzz --corpus {Path.Combine(options.OutDir, "queue")} --out NEW_DIR");
            }

            string seed = CampaignStats.SeedText(options.Seed);
            if (stats.Seed != seed || stats.Shard != options.Shard.ToString())
            {
                throw new CampaignUsageException($"--resume: the campaign in {options.OutDir} has --seed {stats.Seed} --shard {stats.Shard}; resume it with the same values (given --seed {seed} --shard {options.Shard})");
            }

            if (stats.GeneratorVersion != CaseGenerator.Version)
            {
                throw new CampaignUsageException($"--resume: the campaign in {options.OutDir} was made by generator {stats.GeneratorVersion}, this is generator {CaseGenerator.Version}; start a new campaign");
            }

            // The profile changes the case a seed generates: resumed with another, the campaign's
            // recorded cases would not be the ones its seed, shard and case index now regenerate.
            string recorded = ProfileFlags(stats.CpuProfile, stats.StepsPerCase, stats.ProbeWeight);
            string given = ProfileFlags(CpuProfileText(options.Profile.Cpu), options.Profile.Steps, options.Profile.ProbeWeight);
            if (recorded != given)
            {
                throw new CampaignUsageException($"--resume: the campaign in {options.OutDir} has {recorded}; resume it with the same values (given {given})");
            }
        }
        else if (exists)
        {
            throw new CampaignUsageException($"--out {options.OutDir} already holds a campaign (stats.json); use --resume to continue it or choose another directory");
        }
        else
        {
            stats = new CampaignStats
            {
                Seed = CampaignStats.SeedText(options.Seed),
                Shard = options.Shard.ToString(),
                CpuProfile = CpuProfileText(options.Profile.Cpu),
                StepsPerCase = options.Profile.Steps,
                ProbeWeight = options.Profile.ProbeWeight,
            };
        }

        if (options.Resume)
        {
            // This campaign holds the directory's lock: any temporary here is a dead writer's.
            if (files.DeleteStaleTemporaries() is var stale and > 0)
            {
                warnings.Add($"deleted {stale} temporary file(s) that an interrupted write left");
            }

            // stats.json is rewritten every few seconds, events are appended as they happen: after a
            // kill an event can count executions that stats.json had not. Those ran; count them.
            foreach (CampaignEvent e in CampaignEvent.ReadAll(options.OutDir))
            {
                stats.Executions = Math.Max(stats.Executions, e.Executions);
                stats.Probes = Math.Max(stats.Probes, e.Probes ?? 0);
            }
        }

        files.Create();
        executions = stats.Executions;
        sessionStartExecutions = executions;
        probes = stats.Probes;
        sessionStartProbes = probes;
        rejected = stats.Rejected;
        overBudget = stats.RejectedOverBudget;
        infrastructure = stats.InfrastructureFailures;
        hangs = stats.Hangs;
        known = stats.KnownDivergences;
        duplicates = stats.Duplicates;
        nextLocalIndex = (long)stats.NextCaseIndex;
        elapsedBase = stats.ElapsedSeconds;
        foreach (FindingRecord f in stats.Findings)
        {
            findings[f.Signature] = f;
        }
    }

    private static string CpuProfileText(CpuProfile cpu) => cpu.ToString().ToLowerInvariant();

    private static string ProfileFlags(string cpu, int steps, int probeWeight) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"--cpu-profile {cpu} --steps {steps} --probe-weight {probeWeight}");

    private CampaignSummary RunWorkers(CancellationToken cancellation, IProgress<CampaignStatus>? progress)
    {
        var workers = new Worker[options.Jobs];
        for (int w = 0; w < workers.Length; w++)
        {
            if (options.CodeCoverage is { } code)
            {
                (RunOptions traced, ICodeTracer tracer) = code.ForWorker(w);
                workers[w] = new Worker(this, w, traced, tracer);
            }
            else
            {
                workers[w] = new Worker(this, w, options.Targets(), null);
            }
        }

        RunOptions first = workers[0].Options;
        DescribeTargets(first, out IReadOnlyList<string> ruleNames, out List<string> targetNames);
        coverage = new CoverageMap(ruleNames, options.RulesModelled, options.Coverage);
        this.workers = workers;
        stats.Targets = targetNames;
        try
        {
            // A campaign directory holds a stats.json from its first moment: a disk that fills
            // while the corpus loads leaves one that --resume and report can read.
            SaveStats();
            files.Log(new CampaignEvent { Type = options.Resume ? "resume" : "start", Seconds = elapsedBase, Executions = executions, Message = options.CommandLine });

            // Rebuild what a resumed campaign knew, then finish what a kill interrupted.
            LoadQueue(workers[0]);
            if (options.Resume)
            {
                RecoverFindings(first);
                ReplaySlots(workers[0]);
            }

            if (options.CorpusDir is { } dir && !Stopping)
            {
                LoadCorpus(workers[0], dir);
            }

            SaveStats();
            if (!Stopping)
            {
                RunThreads(workers, cancellation, progress);
            }
        }
        catch (IOException e)
        {
            StopForInfrastructure(IoStopReason(e));
        }

        // Every queue entry kept is on disk before the last stats.json says how many there are.
        queueWriter.Dispose();
        foreach (var w in workers.Where(w => !w.Abandoned))
        {
            w.Dispose();
        }

        if (workerFailure is not null)
        {
            SaveStats();
            throw new InvalidOperationException($"a campaign worker failed: {workerFailure.Message}", workerFailure);
        }

        CampaignStatus final = Status();
        lock (statsGate)
        {
            // The last point of the charts: where this invocation ended.
            stats.History.Add(HistoryPoint.Of(final));
        }

        string reason = infrastructureStop is { } why ? why
            : cancellation.IsCancellationRequested ? "cancelled"
            : options.Runs is { } n && Interlocked.Read(ref claimed) >= n ? "runs"
            : "time";
        try
        {
            SaveStats();
            files.Log(new CampaignEvent { Type = "stop", Seconds = final.Elapsed.TotalSeconds, Executions = final.Executions, Probes = final.Probes, Message = reason, Findings = final.Findings });
        }
        catch (IOException e) when (infrastructureStop is not null)
        {
            // The file system already failed (the reason says so): stats.json keeps its last
            // complete version, which --resume reads.
            warnings.Add($"the final stats.json and stop event could not be written: {e.Message}");
        }

        progress?.Report(final);
        lock (findingGate)
        {
            return new CampaignSummary
            {
                Final = final,
                Findings = [.. findings.Values.OrderBy(f => f.FoundAtExecution)],
                OutDir = options.OutDir,
                StopReason = reason,
                StoppedByInfrastructure = infrastructureStop is not null,
                Warnings = [.. warnings],
            };
        }
    }

    /// <summary>Counts a case that a target could not run; after too many in a row the target cannot run at all, and the campaign stops.</summary>
    private void OnInfrastructureFailure(string message)
    {
        Interlocked.Increment(ref infrastructure);
        long inRow = Interlocked.Increment(ref consecutiveInfrastructure);
        files.Log(new CampaignEvent { Type = "infrastructure", Seconds = elapsedBase + session.Elapsed.TotalSeconds, Executions = Interlocked.Read(ref executions), Message = message });
        if (inRow >= options.MaxConsecutiveInfrastructureFailures)
        {
            StopForInfrastructure(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"infrastructure: {inRow} cases in a row could not run; the last: {message}"));
        }
    }

    private void StopForInfrastructure(string reason)
    {
        Interlocked.CompareExchange(ref infrastructureStop, reason, null);
        stop.Cancel();
    }

    private static string IoStopReason(IOException e) =>
        $"infrastructure: the file system failed ({e.Message}); the campaign stopped, and every file written before is complete";

    private static void DescribeTargets(RunOptions o, out IReadOnlyList<string> ruleNames, out List<string> names)
    {
        // The rule ids come from the target that fills Observation.Rules: the first one with names
        // (the runner's observer sees the baseline, so that target should be listed first).
        ruleNames = o.Targets.FirstOrDefault(t => t.RuleNames.Count > 0)?.RuleNames ?? [];
        names = [.. o.Targets.Select(t => t.Name)];
    }

    private void RunThreads(Worker[] workers, CancellationToken cancellation, IProgress<CampaignStatus>? progress)
    {
        // Not disposed when a worker is abandoned: that worker still signals it when its case returns.
        var done = new CountdownEvent(workers.Length);
        var threads = new Thread[workers.Length];
        for (int w = 0; w < workers.Length; w++)
        {
            Worker worker = workers[w];
            threads[w] = new Thread(() =>
            {
                try
                {
                    worker.Loop();
                }
                catch (IOException e)
                {
                    // The file system failed (a full disk): stop cleanly, keeping what was written.
                    StopForInfrastructure(IoStopReason(e));
                }
                catch (Exception e)
                {
                    // Not swallowed: the campaign stops and Run rethrows it.
                    Interlocked.CompareExchange(ref workerFailure, e, null);
                    stop.Cancel();
                }
                finally
                {
                    done.Signal();
                }
            })
            {
                IsBackground = true,
                Name = $"eptfuzz worker {w}",
            };
            threads[w].Start();
        }

        WaitHandle[] handles = [done.WaitHandle, cancellation.WaitHandle];
        var abandoned = new bool[workers.Length];
        try
        {
            while (!done.IsSet)
            {
                // Wake for the status, for the time limit and for the watchdog, whichever is first.
                TimeSpan wait = options.StatusInterval < options.HangThreshold ? options.StatusInterval : options.HangThreshold;
                if (options.MaxTotalTime is { } max)
                {
                    TimeSpan left = max - session.Elapsed;
                    wait = left < wait ? (left > TimeSpan.Zero ? left : TimeSpan.Zero) : wait;
                }

                bool signalled = WaitHandle.WaitAny(handles, wait) != WaitHandle.WaitTimeout;
                if (cancellation.IsCancellationRequested || (options.MaxTotalTime is { } limit && session.Elapsed >= limit))
                {
                    stop.Cancel();
                }

                foreach (Worker w in workers)
                {
                    w.CheckHang();
                }

                if (!done.IsSet && (signalled || Stopping || session.Elapsed - lastTick >= options.StatusInterval))
                {
                    lastTick = session.Elapsed;
                    Tick(progress);
                }

                if (Stopping)
                {
                    // A worker stuck in a case cannot be interrupted: wait for the others and a grace
                    // period, then leave it (its case is already in hangs/).
                    while (!done.Wait(options.HangThreshold))
                    {
                        // Whoever is still busy after a whole hang threshold is stuck: record it and leave it.
                        bool anyStuck = false;
                        for (int i = 0; i < workers.Length; i++)
                        {
                            workers[i].CheckHang();
                            abandoned[i] = workers[i].Stuck;
                            anyStuck |= abandoned[i];
                        }

                        if (anyStuck)
                        {
                            break;
                        }
                    }

                    break;
                }
            }
        }
        finally
        {
            // Also when a status consumer throws: no worker outlives Run, except one stuck in a case.
            stop.Cancel();
            for (int i = 0; i < threads.Length; i++)
            {
                if (abandoned[i])
                {
                    warnings.Add($"worker {i} was still running a case when the campaign stopped; the case is in hangs/");
                    workers[i].Abandoned = true;
                }
                else
                {
                    threads[i].Join();
                }
            }

            if (!abandoned.Any(a => a))
            {
                done.Dispose();
            }
        }
    }

    private void Tick(IProgress<CampaignStatus>? progress)
    {
        CullWhenGrown();
        CampaignStatus s = Status();
        lock (statsGate)
        {
            stats.History.Add(HistoryPoint.Of(s));
            if (stats.History.Count > 4000)
            {
                // Keep the file small over long campaigns: drop every other point.
                stats.History = [.. stats.History.Where((_, i) => i % 2 == 0)];
            }
        }

        SaveStats();
        files.Log(new CampaignEvent
        {
            Type = "status",
            Seconds = s.Elapsed.TotalSeconds,
            Executions = s.Executions,
            ExecPerSecond = s.ExecPerSecond,
            Probes = s.Probes,
            ProbesPerSecond = s.ProbesPerSecond,
            RulesHit = s.RulesHit,
            RulesModelled = s.RulesModelled,
            ClassesHit = s.ClassesHit,
            CodeEdges = s.CodeEdges,
            CorpusSize = s.CorpusSize,
            Findings = s.Findings,
        });
        progress?.Report(s);
    }

    public CampaignStatus Status()
    {
        double seconds = session.Elapsed.TotalSeconds;
        long total = Interlocked.Read(ref executions);
        long thisSession = total - sessionStartExecutions;
        long totalProbes = Interlocked.Read(ref probes);
        int corpusSize, queueSize, findingCount;
        lock (corpusGate)
        {
            corpusSize = corpus.Count;
            queueSize = queueCounter;
        }

        lock (findingGate)
        {
            findingCount = findings.Count;
        }

        return new CampaignStatus
        {
            Executions = total,
            ExecPerSecond = seconds > 0 ? Math.Max(0, thisSession) / seconds : 0,
            Probes = totalProbes,
            ProbesPerSecond = seconds > 0 ? Math.Max(0, totalProbes - sessionStartProbes) / seconds : 0,
            RulesHit = coverage.RulesHit,
            RulesModelled = coverage.RulesModelled,
            ClassesHit = coverage.ClassesHit,
            CodeEdges = coverage.CodeFeatures > 0 ? coverage.CodeEdgesHit() : 0,
            Features = coverage.Features,
            CorpusSize = corpusSize,
            QueueSize = queueSize,
            Findings = findingCount,
            Duplicates = Interlocked.Read(ref duplicates),
            KnownDivergences = Interlocked.Read(ref known),
            Rejected = Interlocked.Read(ref rejected),
            RejectedOverBudget = Interlocked.Read(ref overBudget),
            InfrastructureFailures = Interlocked.Read(ref infrastructure),
            Hangs = Interlocked.Read(ref hangs),
            Elapsed = TimeSpan.FromSeconds(elapsedBase + seconds),
        };
    }

    private void SaveStats()
    {
        CampaignStatus s = Status();
        lock (statsGate)
        {
            stats.NextCaseIndex = (ulong)Interlocked.Read(ref nextLocalIndex);
            stats.Executions = s.Executions;
            stats.Probes = s.Probes;
            stats.Rejected = s.Rejected;
            stats.RejectedOverBudget = s.RejectedOverBudget;
            stats.InfrastructureFailures = s.InfrastructureFailures;
            stats.Hangs = s.Hangs;
            stats.KnownDivergences = s.KnownDivergences;
            stats.Duplicates = s.Duplicates;
            stats.ElapsedSeconds = s.Elapsed.TotalSeconds;
            stats.CorpusSize = s.CorpusSize;
            stats.QueueSize = s.QueueSize;
            stats.RulesHit = s.RulesHit;
            stats.RulesModelled = s.RulesModelled;
            stats.Features = s.Features;
            stats.RulesHitNames = [.. coverage.RuleNamesHit()];
            stats.Coverage = CoverageKindsText.Format(options.Coverage);
            stats.ClassesHit = s.ClassesHit;
            stats.ClassesTotal = ValueClasses.Count;
            stats.ClassesNeverHit = [.. Enumerable.Range(0, ValueClasses.Count).Where(i => !coverage.HasClass(i)).Select(i => ValueClasses.Names[i])];
            var counts = new Dictionary<string, long>(ValueClasses.Count, StringComparer.Ordinal);
            for (int i = 0; i < ValueClasses.Count; i++)
            {
                long n = 0;
                foreach (Worker w in workers)
                {
                    n += w.ClassCount(i);
                }

                counts[ValueClasses.Names[i]] = n;
            }

            stats.ClassCounts = counts;
            stats.CodeEdges = s.CodeEdges;
            lock (findingGate)
            {
                stats.Findings = [.. findings.Values.Where(f => f.Hash.Length > 0).OrderBy(f => f.FoundAtExecution)];
            }

            stats.Save(options.OutDir);
        }
    }

    // ---- corpus ----------------------------------------------------------------------------

    private void LoadQueue(Worker worker)
    {
        LoadQueueEntries(worker);
        if (!Stopping && options.Resume)
        {
            // The whole queue ran: cull it, so that this resume fuzzes and the next replays only the working set.
            int culled = Cull();
            files.Log(new CampaignEvent { Type = "cull", Seconds = elapsedBase + session.Elapsed.TotalSeconds, Executions = Interlocked.Read(ref executions), CorpusSize = lastCulled, Message = $"culled {culled} queue entries to queue/culled; {lastCulled} keep every feature" });
        }
    }

    private void LoadQueueEntries(Worker worker)
    {
        // New entries are numbered after every entry kept before, culled ones included.
        queueCounter = files.QueueEntries().Concat(files.CulledEntries()).Select(QueueId).DefaultIfEmpty(-1).Max() + 1;
        foreach (string path in files.QueueEntries())
        {
            if (Stopping)
            {
                return;
            }

            ParseResult parsed = CaseParser.Parse(File.ReadAllBytes(path), path);
            if (!parsed.Succeeded)
            {
                warnings.Add(parsed.ErrorText());
                continue;
            }

            // Kept under another budget (a resume with a smaller --case-time or --case-memory).
            if (CaseCost.Refusal(parsed.Case, options.Budget, path) is { } refusal)
            {
                warnings.Add($"queue entry not replayed: {refusal}");
                continue;
            }

            (_, _, int[] features, _) = worker.RunForCoverage(parsed.Case);
            lock (corpusGate)
            {
                corpus.Add(new CorpusEntry(Unplaced(parsed.Case), Cost(parsed.Case), features, path));
            }
        }
    }

    private void LoadCorpus(Worker worker, string dir)
    {
        foreach (string path in Directory.EnumerateFiles(dir, "*.ept", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            if (Stopping)
            {
                return;
            }

            ParseResult parsed = CaseParser.Parse(File.ReadAllBytes(path), path);
            if (!parsed.Succeeded)
            {
                RejectSeed(path, parsed.ErrorText());
                continue;
            }

            // Seeds may carry expectations; mutants of them are differential probes.
            if (CaseCost.Refusal(parsed.Case, options.Budget, path) is { } refusal)
            {
                Interlocked.Increment(ref overBudget);
                RejectSeed(path, refusal.ToString());
                continue;
            }

            EptCase seed = Running.CaseFeatures.Restrict(new(parsed.Case.Steps.Select(s => s with { Expectation = null }), sourceName: path), options.Profile.Features);
            (int fresh, TimeSpan duration, int[] features, CaseResult result) = worker.RunForCoverage(seed);
            switch (result.Status)
            {
                case CaseStatus.Diverged:
                    // A seed that diverges on these targets is the cheapest finding there is.
                    OnDivergence(worker.Options, seed, null, false, result);
                    break;
                case CaseStatus.KnownDivergence:
                    Interlocked.Increment(ref known);
                    break;
                case CaseStatus.BadInput or CaseStatus.Unsupported or CaseStatus.Timeout or CaseStatus.ExpectationFailed:
                    RejectSeed(path, $"{result.Status}: {result.Message}");
                    break;
            }

            if (fresh > 0)
            {
                Keep(seed, 0, "corpus " + Path.GetFileName(path), duration, features);
            }
        }
    }

    /// <summary>A corpus seed the campaign cannot use: counted with the rejected cases, its reason in the log and the summary.</summary>
    private void RejectSeed(string path, string reason)
    {
        Interlocked.Increment(ref rejected);
        warnings.Add($"corpus seed {path} not used: {reason}");
        files.Log(new CampaignEvent { Type = "corpus-rejected", Path = path, Message = reason });
    }

    /// <summary>Adds a case that reached new coverage to the corpus and writes it to queue/.</summary>
    private void Keep(EptCase c, ulong seed, string origin, TimeSpan duration, IReadOnlyList<int> features)
    {
        int id;
        lock (corpusGate)
        {
            id = queueCounter++;
        }

        string path = Path.Combine(files.Queue, $"id-{id:d6}-{seed:x16}.ept");
        // Written by the queue writer; a cull that moves it is done after the write, in order.
        queueWriter.Write(path, c with { HeaderComments = [$"queue entry {id}: {origin}"] });
        lock (corpusGate)
        {
            corpus.Add(new CorpusEntry(Unplaced(c), Cost(c), [.. features], path));
        }
    }

    /// <summary>
    /// Culls the working set to the entries that keep every feature (<see cref="QueueCull"/>) and
    /// moves the others' files from queue/ to queue/culled/, so that a resume replays only the
    /// working set. Returns how many were culled.
    /// </summary>
    private int Cull()
    {
        List<CorpusEntry> dropped;
        lock (corpusGate)
        {
            IReadOnlyList<int> keep = QueueCull.Favoured([.. corpus.Select(e => ((IReadOnlyList<int>)e.Features, e.Cost))]);
            var kept = new List<CorpusEntry>(keep.Count);
            var keepSet = new HashSet<int>(keep);
            dropped = [];
            for (int i = 0; i < corpus.Count; i++)
            {
                (keepSet.Contains(i) ? kept : dropped).Add(corpus[i]);
            }

            corpus = kept;
            lastCulled = kept.Count;
        }

        if (dropped.Count > 0)
        {
            Directory.CreateDirectory(files.Culled);
            foreach (CorpusEntry e in dropped)
            {
                queueWriter.Move(e.Path, Path.Combine(files.Culled, Path.GetFileName(e.Path)));
            }
        }

        return dropped.Count;
    }

    /// <summary>A cull while the campaign runs, each time the working set has doubled (and holds at least 256 entries).</summary>
    private void CullWhenGrown()
    {
        int size;
        lock (corpusGate)
        {
            size = corpus.Count;
        }

        if (size >= Math.Max(256, 2 * lastCulled))
        {
            Cull();
        }
    }

    /// <summary>A deterministic estimate of a case's run time: its steps, identity maps weighing most.</summary>
    internal static int Cost(EptCase c)
    {
        int cost = 0;
        foreach (var step in c.Steps)
        {
            cost += step switch
            {
                IdentityMapStep => 256,
                MemoryStep => 16,
                _ => 1,
            };
        }

        return cost;
    }

    private (EptCase? Parent, EptCase? Donor) PickParents(Prng rng)
    {
        lock (corpusGate)
        {
            if (corpus.Count == 0)
            {
                return (null, null);
            }

            // A tournament of two that the cheaper case wins: slow seeds (large identity maps) are
            // still mutated, but they do not take over the campaign's time. The cost is computed
            // from the case, never measured, so a seed fixes the run (with one worker).
            CorpusEntry a = corpus[rng.Below(corpus.Count)];
            CorpusEntry b = corpus[rng.Below(corpus.Count)];
            EptCase parent = a.Cost <= b.Cost ? a.Case : b.Case;
            EptCase? donor = rng.Chance(30) ? corpus[rng.Below(corpus.Count)].Case : null;
            return (parent, donor);
        }
    }

    // ---- findings --------------------------------------------------------------------------

    /// <summary>A divergence: counted when its signature is known, else written raw, reduced, written, then reported.</summary>
    /// <param name="runOptions">How the case ran: the reduction runs it the same way.</param>
    private void OnDivergence(RunOptions runOptions, EptCase c, ulong? seed, bool mutant, CaseResult result)
    {
        string signature = result.Signature!;
        string hash = FindingFile.HashOf(signature);
        long at = Interlocked.Read(ref executions);
        double seconds = elapsedBase + session.Elapsed.TotalSeconds;
        lock (findingGate)
        {
            if (findings.TryGetValue(signature, out FindingRecord? seen))
            {
                findings[signature] = seen with { Count = seen.Count + 1 };
                Interlocked.Increment(ref duplicates);
                return;
            }

            // Reserve the signature so that another worker counts it instead of reducing it again.
            findings[signature] = new FindingRecord { Signature = signature, Hash = string.Empty, CaseSeed = seed ?? 0, Mutant = mutant, FoundAtExecution = at, FoundAtSeconds = seconds, Message = result.Message };
        }

        var origin = new FindingOrigin(options.CommandLine, seed, options.Profile.Cpu) { Mutant = mutant };
        string rawPath = files.RawPath(hash);
        FindingFile.WriteAtomic(rawPath, CasePrinter.Print(CampaignFiles.AnnotateRaw(c, result, origin, rawPath, runOptions.ReplayCommand)));
        FindingRecord record = reduction.Reduce(c, signature, hash, origin, runOptions) with { CaseSeed = seed ?? 0, Mutant = mutant, FoundAtExecution = at, FoundAtSeconds = seconds };
        lock (findingGate)
        {
            long count = findings[signature].Count;
            findings[signature] = record with { Count = count };
        }

        SaveStats();
        files.Log(new CampaignEvent { Type = "finding", Seconds = seconds, Executions = at, Signature = signature, Hash = hash, Path = files.ReducedPath(hash), Message = record.Message });
    }

    /// <summary>After a kill: raw findings without a reduced file (or missing from stats.json) are reduced now.</summary>
    private void RecoverFindings(RunOptions runOptions)
    {
        foreach (string raw in Directory.EnumerateFiles(files.Findings, "*.raw.ept").Order(StringComparer.Ordinal))
        {
            string hash = Path.GetFileName(raw)[..^".raw.ept".Length];
            ParseResult parsed = CaseParser.Parse(File.ReadAllBytes(raw), raw);
            if (!parsed.Succeeded)
            {
                warnings.Add(parsed.ErrorText());
                continue;
            }

            string? signature = FindingHeader.ReadSignature(parsed.Case);
            (ulong Seed, bool Mutant)? seedLine = FindingHeader.ReadSeed(parsed.Case);
            if (signature is null)
            {
                warnings.Add($"{raw}: no valid '# signature:' line; not recovered");
                continue;
            }

            bool listed;
            lock (findingGate)
            {
                listed = findings.ContainsKey(signature);
            }

            if (listed && File.Exists(files.ReducedPath(hash)))
            {
                continue;
            }

            EptCase c = parsed.Case with { HeaderComments = [] };
            var origin = new FindingOrigin(options.CommandLine, seedLine?.Seed, options.Profile.Cpu) { Mutant = seedLine?.Mutant ?? false };
            FindingRecord record = reduction.Reduce(c, signature, hash, origin, runOptions) with { CaseSeed = seedLine?.Seed ?? 0, Mutant = seedLine?.Mutant ?? false, FoundAtExecution = Interlocked.Read(ref executions), FoundAtSeconds = elapsedBase };
            lock (findingGate)
            {
                findings[signature] = findings.TryGetValue(signature, out FindingRecord? old) ? record with { Count = old.Count, FoundAtExecution = old.FoundAtExecution, FoundAtSeconds = old.FoundAtSeconds } : record;
            }

            files.Log(new CampaignEvent { Type = "finding", Seconds = elapsedBase, Executions = Interlocked.Read(ref executions), Signature = signature, Hash = hash, Path = files.ReducedPath(hash), Message = "recovered after a kill: " + record.Message });
        }
    }

    /// <summary>The cases that were running when the campaign was killed: run them once more.</summary>
    private void ReplaySlots(Worker worker)
    {
        if (Stopping)
        {
            // Out of time already: the slots stay for the next --resume (no worker overwrites them).
            return;
        }

        var inFlight = new List<EptCase>();
        foreach (string slot in Directory.EnumerateFiles(files.Queue, ".current-*.ept").Order(StringComparer.Ordinal))
        {
            // A slot is overwritten in place, so a kill can leave it torn: such a slot is not a case.
            ParseResult parsed = CaseParser.Parse(File.ReadAllBytes(slot), slot);
            if (parsed.Succeeded)
            {
                inFlight.Add(parsed.Case);
            }
            else
            {
                warnings.Add($"{slot}: torn by the kill, not replayed");
            }

            File.Delete(slot);
        }

        foreach (EptCase c in inFlight)
        {
            worker.RunOne(c, null, false, "in flight when the campaign stopped");
        }
    }

    /// <summary>NNNNNN of queue/id-NNNNNN-SEED.ept; -1 for another name.</summary>
    private static int QueueId(string path)
    {
        string name = Path.GetFileName(path);
        return name.Length > 9 && int.TryParse(name.AsSpan(3, 6), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id) ? id : -1;
    }

    /// <summary>
    /// The case without the source positions of the file it was read from: a mutant of it is
    /// another case, and a refusal of the mutant names its step by number, not by a line of its parent.
    /// </summary>
    private static EptCase Unplaced(EptCase c) =>
        c.Steps.All(s => s.Position == SourcePosition.None) ? c : c with { Steps = [.. c.Steps.Select(s => s with { Position = SourcePosition.None })] };

    /// <summary>A working-set entry: the case, its cost for parent selection, the features it sets and its file.</summary>
    private sealed record CorpusEntry(EptCase Case, int Cost, int[] Features, string Path);
}
