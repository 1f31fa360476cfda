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
public sealed class Campaign
{
    private readonly CampaignOptions options;
    private readonly CampaignFiles files;
    private readonly object corpusGate = new();
    private readonly object findingGate = new();
    private readonly object statsGate = new();
    private readonly List<EptCase> corpus = [];
    private readonly Dictionary<string, FindingRecord> findings = new(StringComparer.Ordinal);
    private readonly List<string> warnings = [];
    private readonly Stopwatch session = new();
    private CampaignStats stats = new();
    private CoverageMap coverage = new();
    private long executions;
    private long sessionStartExecutions;
    private long rejected;
    private long infrastructure;
    private long hangs;
    private long known;
    private long duplicates;
    private long claimed;
    private long nextLocalIndex;
    private int queueCounter;
    private double elapsedBase;
    /// <summary>Cancelled to stop the workers (limits, cancellation, a failed worker); also ends a reduction early.</summary>
    private readonly CancellationTokenSource stop = new();
    private Exception? workerFailure;

    public Campaign(CampaignOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.options = options;
        files = new CampaignFiles(options.OutDir);
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

        PrepareDirectory();
        session.Start();
        try
        {
            return RunWorkers(cancellation, progress);
        }
        finally
        {
            files.Dispose();
            stop.Dispose();
        }
    }

    private void PrepareDirectory()
    {
        bool exists = CampaignStats.Exists(options.OutDir);
        if (options.Resume)
        {
            stats = CampaignStats.Load(options.OutDir, out string error) ?? throw new CampaignUsageException($"--resume: {error}");
            string seed = CampaignStats.SeedText(options.Seed);
            if (stats.Seed != seed || stats.Shard != options.Shard.ToString())
            {
                throw new CampaignUsageException($"--resume: the campaign in {options.OutDir} has --seed {stats.Seed} --shard {stats.Shard}; resume it with the same values (given --seed {seed} --shard {options.Shard})");
            }

            if (stats.GeneratorVersion != CaseGenerator.Version)
            {
                throw new CampaignUsageException($"--resume: the campaign in {options.OutDir} was made by generator {stats.GeneratorVersion}, this is generator {CaseGenerator.Version}; start a new campaign");
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
                CpuProfile = options.Profile.Cpu.ToString().ToLowerInvariant(),
                StepsPerCase = options.Profile.Steps,
            };
        }

        files.Create();
        executions = stats.Executions;
        sessionStartExecutions = executions;
        rejected = stats.Rejected;
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

    private CampaignSummary RunWorkers(CancellationToken cancellation, IProgress<CampaignStatus>? progress)
    {
        var workers = new Worker[options.Jobs];
        for (int w = 0; w < workers.Length; w++)
        {
            workers[w] = new Worker(this, w, options.Targets());
        }

        RunOptions first = workers[0].Options;
        DescribeTargets(first, out IReadOnlyList<string> ruleNames, out List<string> targetNames);
        coverage = new CoverageMap(ruleNames, options.RulesModelled);
        stats.Targets = targetNames;
        files.Log(new CampaignEvent { Type = options.Resume ? "resume" : "start", Seconds = elapsedBase, Executions = executions, Message = options.CommandLine });

        // Rebuild what a resumed campaign knew, then finish what a kill interrupted.
        LoadQueue(workers[0]);
        if (options.Resume)
        {
            RecoverFindings(workers[0]);
            ReplaySlots(workers[0]);
        }

        if (options.CorpusDir is { } dir)
        {
            LoadCorpus(workers[0], dir);
        }

        SaveStats();
        if (!Stopping)
        {
            RunThreads(workers, cancellation, progress);
        }

        foreach (var w in workers)
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
            stats.History.Add(new HistoryPoint(final.Elapsed.TotalSeconds, final.Executions, final.ExecPerSecond, final.RulesHit, final.Features, final.CorpusSize, final.Findings));
        }

        string reason = cancellation.IsCancellationRequested ? "cancelled"
            : options.Runs is { } n && Interlocked.Read(ref claimed) >= n ? "runs"
            : "time";
        SaveStats();
        files.Log(new CampaignEvent { Type = "stop", Seconds = final.Elapsed.TotalSeconds, Executions = final.Executions, Message = reason, Findings = final.Findings });
        progress?.Report(final);
        lock (findingGate)
        {
            return new CampaignSummary
            {
                Final = final,
                Findings = [.. findings.Values.OrderBy(f => f.FoundAtExecution)],
                OutDir = options.OutDir,
                StopReason = reason,
                Warnings = [.. warnings],
            };
        }
    }

    private static void DescribeTargets(RunOptions o, out IReadOnlyList<string> ruleNames, out List<string> names)
    {
        // The rule ids come from the target that fills Observation.Rules: the first one with names
        // (the runner's observer sees the baseline, so that target should be listed first).
        ruleNames = o.Targets.FirstOrDefault(t => t.RuleNames.Count > 0)?.RuleNames ?? [];
        names = [.. o.Targets.Select(t => t.Name)];
    }

    private void RunThreads(Worker[] workers, CancellationToken cancellation, IProgress<CampaignStatus>? progress)
    {
        using var done = new CountdownEvent(workers.Length);
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
        while (!done.IsSet)
        {
            TimeSpan wait = options.StatusInterval;
            if (options.MaxTotalTime is { } max)
            {
                TimeSpan left = max - session.Elapsed;
                wait = left < wait ? (left > TimeSpan.Zero ? left : TimeSpan.Zero) : wait;
            }

            WaitHandle.WaitAny(handles, wait);
            if (cancellation.IsCancellationRequested || (options.MaxTotalTime is { } limit && session.Elapsed >= limit))
            {
                stop.Cancel();
            }

            if (!done.IsSet)
            {
                Tick(progress);
            }

            if (Stopping)
            {
                done.Wait();
            }
        }

        foreach (Thread t in threads)
        {
            t.Join();
        }
    }

    private void Tick(IProgress<CampaignStatus>? progress)
    {
        CampaignStatus s = Status();
        lock (statsGate)
        {
            stats.History.Add(new HistoryPoint(s.Elapsed.TotalSeconds, s.Executions, s.ExecPerSecond, s.RulesHit, s.Features, s.CorpusSize, s.Findings));
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
            RulesHit = s.RulesHit,
            RulesModelled = s.RulesModelled,
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
        int corpusSize, findingCount;
        lock (corpusGate)
        {
            corpusSize = corpus.Count;
        }

        lock (findingGate)
        {
            findingCount = findings.Count;
        }

        return new CampaignStatus
        {
            Executions = total,
            ExecPerSecond = seconds > 0 ? Math.Max(0, thisSession) / seconds : 0,
            RulesHit = coverage.RulesHit,
            RulesModelled = coverage.RulesModelled,
            Features = coverage.Features,
            CorpusSize = corpusSize,
            Findings = findingCount,
            Duplicates = Interlocked.Read(ref duplicates),
            KnownDivergences = Interlocked.Read(ref known),
            Rejected = Interlocked.Read(ref rejected),
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
            stats.Rejected = s.Rejected;
            stats.InfrastructureFailures = s.InfrastructureFailures;
            stats.Hangs = s.Hangs;
            stats.KnownDivergences = s.KnownDivergences;
            stats.Duplicates = s.Duplicates;
            stats.ElapsedSeconds = s.Elapsed.TotalSeconds;
            stats.CorpusSize = s.CorpusSize;
            stats.RulesHit = s.RulesHit;
            stats.RulesModelled = s.RulesModelled;
            stats.Features = s.Features;
            stats.RulesHitNames = [.. coverage.RuleNamesHit()];
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
        foreach (string path in files.QueueEntries())
        {
            ParseResult parsed = CaseParser.Parse(File.ReadAllBytes(path), path);
            if (!parsed.Succeeded)
            {
                warnings.Add(parsed.ErrorText());
                continue;
            }

            worker.RunForCoverage(parsed.Case);
            lock (corpusGate)
            {
                corpus.Add(parsed.Case);
                queueCounter++;
            }
        }
    }

    private void LoadCorpus(Worker worker, string dir)
    {
        foreach (string path in Directory.EnumerateFiles(dir, "*.ept", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            ParseResult parsed = CaseParser.Parse(File.ReadAllBytes(path), path);
            if (!parsed.Succeeded)
            {
                warnings.Add(parsed.ErrorText());
                files.Log(new CampaignEvent { Type = "corpus-rejected", Path = path, Message = parsed.ErrorText() });
                continue;
            }

            // Seeds may carry expectations; mutants of them are differential probes.
            EptCase seed = new(parsed.Case.Steps.Select(s => s with { Expectation = null }), sourceName: path);
            if (worker.RunForCoverage(seed) > 0)
            {
                Keep(seed, 0, "corpus " + Path.GetFileName(path));
            }
        }
    }

    /// <summary>Adds a case that reached new coverage to the corpus and writes it to queue/.</summary>
    private void Keep(EptCase c, ulong seed, string origin)
    {
        int id;
        lock (corpusGate)
        {
            id = queueCounter++;
            corpus.Add(c);
        }

        string name = $"id-{id:d6}-{seed:x16}.ept";
        EptCase entry = c with { HeaderComments = [$"queue entry {id}: {origin}"] };
        FindingFile.WriteAtomic(Path.Combine(files.Queue, name), CasePrinter.Print(entry), durable: false);
    }

    private (EptCase? Parent, EptCase? Donor) PickParents(Prng rng)
    {
        lock (corpusGate)
        {
            if (corpus.Count == 0)
            {
                return (null, null);
            }

            EptCase parent = corpus[rng.Below(corpus.Count)];
            EptCase? donor = rng.Chance(30) ? corpus[rng.Below(corpus.Count)] : null;
            return (parent, donor);
        }
    }

    // ---- findings --------------------------------------------------------------------------

    /// <summary>A divergence: counted when its signature is known, else written raw, reduced, written, then reported.</summary>
    private void OnDivergence(Worker worker, EptCase c, ulong? seed, bool mutant, CaseResult result)
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
        FindingFile.WriteAtomic(rawPath, CasePrinter.Print(CampaignFiles.AnnotateRaw(c, result, origin, rawPath, worker.Options.ReplayCommand)));
        FindingRecord record = Reduce(worker, c, signature, hash, origin) with { CaseSeed = seed ?? 0, Mutant = mutant, FoundAtExecution = at, FoundAtSeconds = seconds };
        lock (findingGate)
        {
            long count = findings[signature].Count;
            findings[signature] = record with { Count = count };
        }

        SaveStats();
        files.Log(new CampaignEvent { Type = "finding", Seconds = seconds, Executions = at, Signature = signature, Hash = hash, Path = files.ReducedPath(hash), Message = record.Message });
    }

    /// <summary>Reduces and writes findings/HASH.ept (+ .json, + .test.cs); the raw file is already on disk.</summary>
    private FindingRecord Reduce(Worker worker, EptCase c, string signature, string hash, FindingOrigin origin)
    {
        ReductionResult r = Reducer.Reduce(c, worker.RunQuiet, signature, options.ReduceCap, stop.Token);
        string path = files.ReducedPath(hash);
        EptCase annotated = FindingFile.Annotate(r, origin, path, worker.Options.ReplayCommand);
        var record = new FindingRecord
        {
            Signature = signature,
            Hash = hash,
            StepsBefore = r.StepsBefore,
            StepsAfter = r.StepsAfter,
            ReduceSeconds = r.Elapsed.TotalSeconds,
            Message = r.Result.Message,
        };
        FindingFile.WriteAtomic(files.DetailPath(hash), CampaignFiles.DetailJson(record, r.Result));
        if (options.EmitRegressionTests)
        {
            FindingFile.WriteAtomic(files.TestPath(hash), RegressionTestEmitter.Emit(r.Case, signature, options.RegressionOptionsExpression));
        }

        FindingFile.WriteAtomic(path, CasePrinter.Print(annotated));
        return record;
    }

    /// <summary>After a kill: raw findings without a reduced file (or missing from stats.json) are reduced now.</summary>
    private void RecoverFindings(Worker worker)
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

            string? signature = HeaderValue(parsed.Case, "signature: ");
            (ulong Seed, bool Mutant)? seedLine = parsed.Case.HeaderComments.Select(FindingOrigin.ParseSeedLine).FirstOrDefault(x => x is not null);
            if (signature is null)
            {
                warnings.Add($"{raw}: no '# signature:' line; not recovered");
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
            FindingRecord record = Reduce(worker, c, signature, hash, origin) with { CaseSeed = seedLine?.Seed ?? 0, Mutant = seedLine?.Mutant ?? false, FoundAtExecution = Interlocked.Read(ref executions), FoundAtSeconds = elapsedBase };
            lock (findingGate)
            {
                findings[signature] = findings.TryGetValue(signature, out FindingRecord? old) ? record with { Count = old.Count, FoundAtExecution = old.FoundAtExecution, FoundAtSeconds = old.FoundAtSeconds } : record;
            }

            files.Log(new CampaignEvent { Type = "finding", Seconds = elapsedBase, Executions = Interlocked.Read(ref executions), Signature = signature, Hash = hash, Path = files.ReducedPath(hash), Message = "recovered after a kill: " + record.Message });
        }
    }

    private static string? HeaderValue(EptCase c, string prefix)
    {
        foreach (string line in c.HeaderComments)
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line[prefix.Length..];
            }
        }

        return null;
    }

    /// <summary>The cases that were running when the campaign was killed: run them once more.</summary>
    private void ReplaySlots(Worker worker)
    {
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

    // ---- workers ---------------------------------------------------------------------------

    private sealed class Worker : IDisposable
    {
        private readonly Campaign campaign;
        private readonly int index;
        private readonly CoverageMap local;
        private readonly RunOptions observed;
        private readonly RunOptions quiet;
        private FileStream? slot;
        private byte[] buffer = new byte[16 * 1024];

        public Worker(Campaign campaign, int index, RunOptions options)
        {
            this.campaign = campaign;
            this.index = index;
            Options = options;
            local = new CoverageMap();
            observed = options with { Observer = local };
            quiet = options with { Observer = null, Trace = null };
        }

        public RunOptions Options { get; }

        public void Loop()
        {
            CampaignOptions o = campaign.options;
            while (!campaign.Stopping)
            {
                long n = Interlocked.Increment(ref campaign.claimed);
                if (o.Runs is { } runs && n > runs)
                {
                    break;
                }

                ulong localIndex = (ulong)(Interlocked.Increment(ref campaign.nextLocalIndex) - 1);
                ulong seed = CaseSeed(o.Seed, o.Shard, localIndex);
                var rng = new Prng(Prng.Derive(seed, 0x6D75_7461UL));
                (EptCase? parent, EptCase? donor) = campaign.PickParents(rng);
                EptCase c;
                string origin;
                bool mutant = false;
                if (parent is null || rng.Chance(o.FreshPercent))
                {
                    c = CaseGenerator.Generate(seed, o.Profile);
                    origin = $"generated from seed 0x{seed:x16}";
                }
                else
                {
                    c = Mutator.Mutate(parent, rng, donor, o.Profile.Steps + (o.Profile.Steps / 2));
                    mutant = true;
                    origin = $"mutant (iteration seed 0x{seed:x16})";
                }

                RunOne(c, seed, mutant, origin);
            }
        }

        /// <summary>Runs one case (written to its slot first), keeps it when new, and handles what it found.</summary>
        public void RunOne(EptCase c, ulong? seed, bool mutant, string origin)
        {
            if (campaign.options.WriteCurrentCase)
            {
                WriteSlot(c);
            }

            local.BeginCase();
            CaseResult result = SafeRun(c, observed);
            Interlocked.Increment(ref campaign.executions);
            int fresh = local.EndCase();
            switch (result.Status)
            {
                case CaseStatus.Diverged:
                    campaign.coverage.Absorb(local.CaseFeatures);
                    campaign.OnDivergence(this, c, seed, mutant, result);
                    break;
                case CaseStatus.KnownDivergence:
                    Interlocked.Increment(ref campaign.known);
                    break;
                case CaseStatus.BadInput:
                    Interlocked.Increment(ref campaign.rejected);
                    break;
                case CaseStatus.InfrastructureFailure:
                    Interlocked.Increment(ref campaign.infrastructure);
                    campaign.files.Log(new CampaignEvent { Type = "infrastructure", Seconds = campaign.elapsedBase + campaign.session.Elapsed.TotalSeconds, Executions = Interlocked.Read(ref campaign.executions), Message = result.Message });
                    break;
                default:
                    if (fresh > 0 && campaign.coverage.Absorb(local.CaseFeatures) > 0)
                    {
                        campaign.Keep(c, seed ?? 0, origin);
                    }

                    break;
            }

            if (result.Duration >= campaign.options.HangThreshold)
            {
                Interlocked.Increment(ref campaign.hangs);
                string path = Path.Combine(campaign.files.Hangs, $"{seed ?? 0:x16}-{Interlocked.Read(ref campaign.executions)}.ept");
                FindingFile.WriteAtomic(path, CasePrinter.Print(c with { HeaderComments = [$"ran {result.Duration.TotalSeconds:0.0} s ({origin})"] }));
                campaign.files.Log(new CampaignEvent { Type = "hang", Seconds = campaign.elapsedBase + campaign.session.Elapsed.TotalSeconds, Executions = Interlocked.Read(ref campaign.executions), Path = path });
            }
        }

        /// <summary>Runs a case only to learn its coverage (queue and corpus loading); returns the new features.</summary>
        public int RunForCoverage(EptCase c)
        {
            local.BeginCase();
            CaseResult result = SafeRun(c, observed);
            Interlocked.Increment(ref campaign.executions);
            local.EndCase();
            return result.Status == CaseStatus.Passed || result.Status == CaseStatus.KnownDivergence ? campaign.coverage.Absorb(local.CaseFeatures) : 0;
        }

        /// <summary>The run the reducer uses: no coverage observer.</summary>
        public CaseResult RunQuiet(EptCase c) => SafeRun(c, quiet);

        /// <summary>
        /// Overwrites this worker's slot file with the case about to run. The stream stays open and is
        /// not flushed to the disk: the bytes are in the OS page cache, which survives a kill -9 of
        /// this process (not a power loss), at the cost of one write call per case.
        /// </summary>
        private void WriteSlot(EptCase c)
        {
            slot ??= new FileStream(campaign.files.CurrentSlot(index), FileMode.Create, FileAccess.Write, FileShare.Read, 1, FileOptions.None);
            string text = CasePrinter.Print(c);
            int max = Encoding.UTF8.GetMaxByteCount(text.Length);
            if (buffer.Length < max)
            {
                buffer = new byte[max];
            }

            int length = Encoding.UTF8.GetBytes(text, buffer);
            slot.Position = 0;
            slot.Write(buffer, 0, length);
            slot.SetLength(length);
            slot.Flush(flushToDisk: false);
        }

        public void Dispose()
        {
            slot?.Dispose();
            slot = null;
        }
    }

    /// <summary>
    /// Runs a case; an exception escaping the runner (the hypervisor under test threw) is a
    /// finding, reported with its stack, never swallowed.
    /// </summary>
    public static CaseResult SafeRun(EptCase c, RunOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            return CaseRunner.Run(c, options);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or InsufficientExecutionStackException))
        {
            string where = new StackTrace(e, false).GetFrame(0)?.GetMethod()?.Name ?? "unknown";
            return new CaseResult
            {
                File = c.SourceName,
                Status = CaseStatus.Diverged,
                Signature = $"case|hypervisor:crash|-:-|{e.GetType().Name}@{where}",
                Message = $"the run threw {e.GetType().Name}: {e.Message}",
                Detail = e.ToString(),
            };
        }
    }
}
