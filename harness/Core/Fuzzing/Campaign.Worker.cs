using System.Diagnostics;
using System.Text;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>A campaign's workers: each owns its run options, its coverage observer and its slot file.</summary>
public sealed partial class Campaign
{
    private sealed record RunningCase(EptCase Case, string Origin, ulong? Seed);

    private sealed class Worker : IDisposable
    {
        private readonly Campaign campaign;
        private readonly int index;
        private readonly CoverageMap local;
        private readonly RunOptions observed;
        private Microsoft.Win32.SafeHandles.SafeFileHandle? slot;
        /// <summary>Bytes of the case now in the slot; after them the file holds only line breaks.</summary>
        private int slotText;
        private byte[] buffer = new byte[16 * 1024];
        private readonly StringBuilder slotBuilder = new(16 * 1024);

        /// <summary>The case being run, and when it started (Stopwatch ticks; 0 when idle): the watchdog reads them.</summary>
        private RunningCase? running;
        private long runningSince;

        /// <summary>1 once this case was recorded in hangs/ (by the watchdog or after it finished).</summary>
        private int hangRecorded;

        private readonly ICodeTracer? tracer;

        public Worker(Campaign campaign, int index, RunOptions options, ICodeTracer? tracer)
        {
            this.campaign = campaign;
            this.index = index;
            this.tracer = tracer;
            Options = options;
            local = new CoverageMap(kinds: campaign.options.Coverage);
            observed = options with { Observer = local };
        }

        public RunOptions Options { get; }

        /// <summary>How many of this worker's executions hit value class <paramref name="index"/>.</summary>
        public long ClassCount(int index) => local.ClassCount(index);

        /// <summary>Starts a case: its value classes, and a clear trace map.</summary>
        private void Begin(EptCase c)
        {
            local.BeginCase(c);
            tracer?.Reset();
        }

        /// <summary>Ends a case: its code edges join its features; returns how many guiding features were new to this worker.</summary>
        private int End()
        {
            if (tracer is not null)
            {
                local.AddCodeEdges(tracer.Map);
            }

            return local.EndCase();
        }

        /// <summary>Left running in a case that never returned; not disposed.</summary>
        public bool Abandoned { get; set; }

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
                    c = Mutator.Mutate(parent, rng, donor, o.Profile.Steps + (o.Profile.Steps / 2)) with { SourceName = $"mutant-{seed:x16}.ept" };
                    mutant = true;
                    origin = $"mutant (iteration seed 0x{seed:x16})";
                }

                RunOne(Running.CaseFeatures.Restrict(c, o.Profile.Features), seed, mutant, origin);
            }
        }

        /// <summary>Runs one case (written to its slot first), keeps it when new, and handles what it found.</summary>
        public void RunOne(EptCase c, ulong? seed, bool mutant, string origin)
        {
            // The same planned-cost check as replay and gate: a case that could run for minutes or
            // take gigabytes is refused before it runs (never run to a hang), counted with its reason.
            if (CaseCost.Refusal(c, campaign.options.Budget, c.SourceName) is { } refusal)
            {
                Interlocked.Increment(ref campaign.overBudget);
                Reject(c, seed, origin, refusal.ToString());
                return;
            }

            if (campaign.options.WriteCurrentCase)
            {
                WriteSlot(c);
            }

            Volatile.Write(ref hangRecorded, 0);
            Volatile.Write(ref running, new RunningCase(c, origin, seed));
            Volatile.Write(ref runningSince, Stopwatch.GetTimestamp());
            Begin(c);
            CaseResult result = CaseRunner.Run(c, observed);
            Volatile.Write(ref runningSince, 0);
            Interlocked.Increment(ref campaign.executions);
            Interlocked.Add(ref campaign.probes, result.Counters.Probes);
            int fresh = End();
            if (result.Status != CaseStatus.InfrastructureFailure)
            {
                Interlocked.Exchange(ref campaign.consecutiveInfrastructure, 0);
            }

            switch (result.Status)
            {
                case CaseStatus.Diverged:
                    campaign.coverage.Absorb(local.CaseFeatures);
                    campaign.OnDivergence(Options, c, seed, mutant, result);
                    break;
                case CaseStatus.KnownDivergence:
                    Interlocked.Increment(ref campaign.known);
                    break;
                case CaseStatus.BadInput:
                    // A target refused the case (e.g. more table pages than its pool holds): not a finding.
                    Reject(c, seed, origin, result.Message);
                    break;
                case CaseStatus.InfrastructureFailure:
                    campaign.OnInfrastructureFailure(result.Message);
                    break;
                default:
                    if (fresh > 0 && campaign.coverage.Absorb(local.CaseFeatures) > 0)
                    {
                        campaign.Keep(c, seed ?? 0, origin, result.Duration, local.CaseFeatures);
                    }

                    break;
            }

            if (result.Duration >= campaign.options.HangThreshold)
            {
                RecordHang(c, seed, $"ran {result.Duration.TotalSeconds:0.0} s ({origin})");
            }
        }

        /// <summary>A case refused as bad input, not a finding: counted; the first few are logged with the case so that the reason can be seen.</summary>
        private void Reject(EptCase c, ulong? seed, string origin, string reason)
        {
            if (Interlocked.Increment(ref campaign.rejected) <= 20)
            {
                string path = Path.Combine(campaign.files.Rejected, $"{seed ?? 0:x16}-{index}.ept");
                FindingFile.WriteAtomic(path, CasePrinter.Print(c with { HeaderComments = [$"rejected: {reason}", origin] }));
                campaign.files.Log(new CampaignEvent { Type = "rejected", Seconds = campaign.elapsedBase + campaign.session.Elapsed.TotalSeconds, Executions = Interlocked.Read(ref campaign.executions), Path = path, Message = reason });
            }
        }

        /// <summary>
        /// The watchdog's check, from the monitor thread: a case running longer than the hang
        /// threshold is written to hangs/ now, while it still runs (a case cannot be interrupted
        /// in-process, so this is the record if it never returns).
        /// </summary>
        public bool CheckHang()
        {
            long since = Volatile.Read(ref runningSince);
            if (since == 0 || Stopwatch.GetElapsedTime(since) < campaign.options.HangThreshold || Volatile.Read(ref running) is not { } r)
            {
                return false;
            }

            RecordHang(r.Case, r.Seed, $"still running after {campaign.options.HangThreshold.TotalSeconds:0.0} s ({r.Origin})");
            return true;
        }

        /// <summary>True while a case has been running longer than the hang threshold.</summary>
        public bool Stuck => Volatile.Read(ref runningSince) is var since && since != 0 && Stopwatch.GetElapsedTime(since) >= campaign.options.HangThreshold;

        private void RecordHang(EptCase c, ulong? seed, string why)
        {
            if (Interlocked.Exchange(ref hangRecorded, 1) != 0)
            {
                return;
            }

            long at = Interlocked.Increment(ref campaign.hangs);
            string path = Path.Combine(campaign.files.Hangs, $"{seed ?? 0:x16}-{index}-{at}.ept");
            FindingFile.WriteAtomic(path, CasePrinter.Print(c with { HeaderComments = [why] }));
            campaign.files.Log(new CampaignEvent { Type = "hang", Seconds = campaign.elapsedBase + campaign.session.Elapsed.TotalSeconds, Executions = Interlocked.Read(ref campaign.executions), Path = path, Message = why });
        }

        /// <summary>Runs a case only to learn its coverage (queue and corpus loading); returns the new features, the run's duration and every feature it set.</summary>
        public (int Fresh, TimeSpan Duration, int[] Features, CaseResult Result) RunForCoverage(EptCase c)
        {
            Begin(c);
            CaseResult result = CaseRunner.Run(c, observed);
            Interlocked.Increment(ref campaign.executions);
            Interlocked.Add(ref campaign.probes, result.Counters.Probes);
            End();
            if (result.Status == CaseStatus.InfrastructureFailure)
            {
                campaign.OnInfrastructureFailure(result.Message);
            }
            else
            {
                Interlocked.Exchange(ref campaign.consecutiveInfrastructure, 0);
            }

            int fresh = result.Status == CaseStatus.Passed || result.Status == CaseStatus.KnownDivergence ? campaign.coverage.Absorb(local.CaseFeatures) : 0;
            return (fresh, result.Duration, [.. local.CaseFeatures], result);
        }

        /// <summary>
        /// Overwrites this worker's slot file with the case about to run. The file stays open and is
        /// not flushed to the disk: the bytes are in the OS page cache, which survives a kill -9 of
        /// this process (not a power loss), at the cost of one write call per case. The file never
        /// shrinks: a shorter case overwrites the rest of the previous one with line breaks (blank
        /// lines, which the parser skips), because truncating it every case made the file system
        /// free and allocate its blocks again, several microseconds of kernel time a case, on a
        /// lock the other workers wait for.
        /// </summary>
        private void WriteSlot(EptCase c)
        {
            slot ??= File.OpenHandle(campaign.files.CurrentSlot(index), FileMode.Create, FileAccess.Write, FileShare.Read);
            // One builder for every case, encoded chunk by chunk: no string of the case is made.
            slotBuilder.Clear();
            CasePrinter.Append(slotBuilder, c);
            int max = Math.Max(Encoding.UTF8.GetMaxByteCount(slotBuilder.Length), slotText);
            if (buffer.Length < max)
            {
                buffer = new byte[max];
            }

            int length = 0;
            foreach (ReadOnlyMemory<char> chunk in slotBuilder.GetChunks())
            {
                length += Encoding.UTF8.GetBytes(chunk.Span, buffer.AsSpan(length));
            }

            int end = Math.Max(length, slotText);
            buffer.AsSpan(length, end - length).Fill((byte)'\n');
            RandomAccess.Write(slot, buffer.AsSpan(0, end), 0);
            slotText = length;
        }

        public void Dispose()
        {
            slot?.Dispose();
            slot = null;
        }
    }
}
