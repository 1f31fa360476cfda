using EptFuzz.Contract;
using EptFuzz.Targets.External.Hosting;
using EptFuzz.Targets.External.Protocol;

namespace EptFuzz.Targets.External;

/// <summary>
/// An EPT implementation in another process (<c>exec:PATH</c>): the hypervisor that builds the
/// tables, and, where it declares one, its own lookup as a translator. Each worker thread gets its
/// own process and arena, kept across cases and restarted after a fault.
/// </summary>
public sealed class ExternalTarget : IDisposable
{
    private readonly ThreadLocal<ExternalHost> hosts;
    private readonly ExternalTargetOptions options;

    public ExternalTarget(ExternalTargetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.options = options;
        hosts = new ThreadLocal<ExternalHost>(() => new ExternalHost(options), trackAllValues: true);
    }

    public string Path => options.Path;

    /// <summary>Starts the target on this thread if needed and returns its HELLO (infrastructure failure if it cannot run).</summary>
    public TargetDeclaration Declare() => hosts.Value!.EnsureRunning();

    /// <summary>The declared features as the harness names them.</summary>
    public HypervisorFeatures Features
    {
        get
        {
            var d = Declare();
            var f = HypervisorFeatures.None;
            void Add(bool on, HypervisorFeatures feature) => f |= on ? feature : HypervisorFeatures.None;
            bool map = d.Operations.HasFlag(TargetOperations.Map);
            Add(map && d.PageSizes.HasFlag(TargetPageSizes.Size4K), HypervisorFeatures.Map4K);
            Add(map && d.PageSizes.HasFlag(TargetPageSizes.Size2M), HypervisorFeatures.Map2M);
            Add(map && d.PageSizes.HasFlag(TargetPageSizes.Size1G), HypervisorFeatures.Map1G);
            Add(d.Operations.HasFlag(TargetOperations.Unmap), HypervisorFeatures.Unmap);
            Add(d.Operations.HasFlag(TargetOperations.Protect), HypervisorFeatures.Protect);
            Add(d.Operations.HasFlag(TargetOperations.Retype), HypervisorFeatures.Retype);
            Add(d.Operations.HasFlag(TargetOperations.Split), HypervisorFeatures.Split);
            Add(d.Operations.HasFlag(TargetOperations.Merge), HypervisorFeatures.Merge);
            Add(d.Operations.HasFlag(TargetOperations.IdentityMap), HypervisorFeatures.IdentityMap);
            Add(d.Operations.HasFlag(TargetOperations.Invept), HypervisorFeatures.Invept);
            Add(d.Operations.HasFlag(TargetOperations.Walk5), HypervisorFeatures.Walk5);
            Add(d.Operations.HasFlag(TargetOperations.AccessedDirty), HypervisorFeatures.AccessedDirty);
            Add(d.Operations.HasFlag(TargetOperations.Mbec), HypervisorFeatures.Mbec);
            // The guest's page tables are built by the harness for every target.
            return f | HypervisorFeatures.GuestPaging;
        }
    }

    /// <summary>A fresh case on this thread's process.</summary>
    public IEptHypervisor CreateHypervisor() => new ExternalHypervisor(hosts.Value!);

    /// <summary>The target's own lookup as a translator, or null when it declares none.</summary>
    public ITarget? Walker => Declare().Walkers == TargetWalkers.None ? null : new ExternalWalkTarget(this);

    internal ExternalHost Host => hosts.Value!;

    public void Dispose()
    {
        foreach (var host in hosts.Values)
        {
            host.Dispose();
        }

        hosts.Dispose();
    }
}

/// <summary>
/// The target's own lookup (WALK) as a translator: compared on where an address is mapped. Its
/// questions travel with the next command instead of costing a round trip each, so it answers at
/// the end of the case (a batch translator), on the state each probe saw.
/// </summary>
internal sealed class ExternalWalkTarget(ExternalTarget owner) : ITarget
{
    public string Name => $"{owner.Declare().Name}.walk";

    public TargetTraits Traits => TargetTraits.SoftwareWalk;

    public IReadOnlyList<string> RuleNames => [];

    public ITargetSession Open(CpuCapabilities cpu) => new Session(owner.Host, owner.Declare());

    private sealed class Session : ITargetSession
    {
        private readonly ExternalHost host;
        private readonly TargetDeclaration declared;
        private ulong eptp;
        private bool disposed;

        public Session(ExternalHost host, TargetDeclaration declared)
        {
            this.host = host;
            this.declared = declared;
            // Opened before the case's plan is read: its probes' lookups may go ahead with the operations.
            host.WalkSessions++;
        }

        public string? UnsupportedReason => null;

        public void SetEptp(ulong value) => eptp = value;

        public void SetControls(VmxControls controls)
        {
            // A software lookup follows bits 2:0 whatever the controls say.
        }

        public void SetGuestPaging(GuestPaging paging)
        {
            // Guest-linear accesses are answered only by a target that declares a guest-linear lookup.
        }

        public void Write(MemoryWrite write)
        {
            // The lookup reads the arena itself: every write is already there.
        }

        public void Invept(InveptType type)
        {
            // A software lookup caches nothing.
        }

        /// <summary>
        /// Queues the question (or finds it sent ahead with the operations). Its answer counts
        /// only where the lookup walks what the translators walk: the target's own root (not a
        /// raw EPTP's), and for a guest-physical address a walk that stays in the arena (a raw
        /// edit can link a table anywhere; code that follows such a link gets no pointer from
        /// its SDK). Otherwise the access gets no answer (counted unsupported).
        /// </summary>
        public Observation? Submit(in Probe probe)
        {
            if (probe.Kind != ProbeKind.Access || !declared.Answers(probe.Access.Linear))
            {
                return null;
            }

            bool counts = (eptp == 0 || (eptp & EptGeometry.AddressMask) == (host.Eptp & EptGeometry.AddressMask))
                && (probe.Access.Linear || host.WalkStaysInArena(probe.Access.Address));
            if (!host.WalkSentAhead(probe.Step))
            {
                host.QueueWalk(probe.Step, probe.Access.Linear, probe.Access.Address);
            }

            if (!counts)
            {
                host.DropWalkAnswer(probe.Step);
            }

            return null;
        }

        public IReadOnlyDictionary<int, Observation> Finish()
        {
            var answers = new Dictionary<int, Observation>();
            foreach (var (step, answer) in host.TakeWalkAnswers())
            {
                answers[step] = answer.Mapped
                    ? new Observation
                    {
                        Kind = OutcomeKind.Translated,
                        Hpa = new Hpa(answer.Hpa),
                        PageSize = answer.PageSize switch { 1UL << 30 => PageSize.Size1G, 1UL << 21 => PageSize.Size2M, _ => PageSize.Size4K },
                        Permissions = (EptPermissions)(answer.Permissions & 0xF),
                    }
                    : new Observation { Kind = OutcomeKind.EptViolation };
            }

            return answers;
        }

        public void Dispose()
        {
            // The host belongs to the worker thread, not to the case.
            if (!disposed)
            {
                disposed = true;
                host.WalkSessions--;
            }
        }
    }
}
