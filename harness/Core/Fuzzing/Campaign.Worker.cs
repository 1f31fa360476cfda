using System.Diagnostics;
using System.Text;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>A campaign's workers: each owns its run options, its coverage observer and its slot file.</summary>
public sealed partial class Campaign
{
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
                        campaign.Keep(c, seed ?? 0, origin, result.Duration);
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

        /// <summary>Runs a case only to learn its coverage (queue and corpus loading); returns the new features and the run's duration.</summary>
        public (int Fresh, TimeSpan Duration) RunForCoverage(EptCase c)
        {
            local.BeginCase();
            CaseResult result = SafeRun(c, observed);
            Interlocked.Increment(ref campaign.executions);
            local.EndCase();
            int fresh = result.Status == CaseStatus.Passed || result.Status == CaseStatus.KnownDivergence ? campaign.coverage.Absorb(local.CaseFeatures) : 0;
            return (fresh, result.Duration);
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
