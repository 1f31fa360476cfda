using System.Collections.Concurrent;
using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;
using EptFuzz.Targets.Vmx.Runner;
using EptFuzz.Targets.Vmx.Session;

namespace EptFuzz.Targets.Vmx;

/// <summary>
/// The VMX oracle: the case's tables are loaded into a real VMX guest (an emulator's VMX+EPT) that
/// performs the accesses. A batch target: every answer comes from <see cref="ITargetSession.Finish"/>,
/// one boot per case.
/// </summary>
public abstract class VmxTarget : ITarget
{
    /// <summary>One capability boot per emulator configuration and process.</summary>
    private static readonly ConcurrentDictionary<object, Lazy<EmulatedCpu>> ProbedCpus = new();

    private readonly IEmulator emulator;
    private readonly object configuration;

    private protected VmxTarget(IEmulator emulator, object configuration)
    {
        this.emulator = emulator;
        this.configuration = configuration;
    }

    public string Name => emulator.Name;

    /// <summary>
    /// Entries (A/D are read back by dumping entries) and VM-entry verdicts. Never MemoryType (no
    /// readout), Walk, AccessedDirtyWrites, Immediate or CachesTranslations (INVEPT before every
    /// probe that follows a change). AdvancedExitInfo only when the processor reports CAP[22];
    /// never Mbec (the oracle does not set the MBEC control).
    /// </summary>
    public TargetTraits Traits
    {
        get
        {
            var traits = TargetTraits.Entries | TargetTraits.VmEntry;
            if (emulator.Unavailable() is null && Processor().Capabilities.AdvancedExitInfo)
            {
                traits |= TargetTraits.AdvancedExitInfo;
            }

            return traits;
        }
    }

    public IReadOnlyList<string> RuleNames => [];

    public ITargetSession Open(CpuCapabilities cpu) => new VmxSession(emulator, cpu, Processor());

    /// <summary>The emulated processor, read once by booting the image with an empty script.</summary>
    public EmulatedCpu Processor()
    {
        var key = (emulator.Name, configuration);
        var lazy = ProbedCpus.GetOrAdd(key, _ => new Lazy<EmulatedCpu>(ProbeProcessor));
        try
        {
            return lazy.Value;
        }
        catch (TargetFailureException)
        {
            // Do not remember an infrastructure failure: the next Open boots again.
            ProbedCpus.TryRemove(key, out _);
            throw;
        }
    }

    private EmulatedCpu ProbeProcessor()
    {
        var report = OracleBoot.Run(emulator, DiskImage.Build(new ScriptBuilder()));
        var cpu = EmulatedCpu.FromReport(Describe(), report, out string? reason)
            ?? throw new TargetFailureException(emulator.Name, $"unavailable: {reason}");
        return cpu with { IgnoresLargeLeafBit12 = IsBochs };
    }

    private protected virtual bool IsBochs => false;

    private protected abstract string Describe();
}

/// <summary>The Bochs back end (Debian bochs + bochs-sdl, headless): runs everywhere, including CI.</summary>
public sealed class BochsTarget(BochsOptions options) : VmxTarget(new BochsEmulator(options), options)
{
    public BochsTarget()
        : this(new BochsOptions())
    {
    }

    public BochsOptions Options { get; } = options;

    private protected override string Describe() => $"bochs ({Options.CpuModel})";

    private protected override bool IsBochs => true;
}

/// <summary>
/// The KVM back end: qemu-system-x86_64 -accel kvm -cpu host,+vmx, for hosts with nested VMX
/// (kvm_intel nested=1). Elsewhere <see cref="ITarget.Open"/> throws a
/// <see cref="TargetFailureException"/> whose message starts with "unavailable:".
/// </summary>
public sealed class KvmTarget(QemuOptions options) : VmxTarget(new QemuEmulator(options with { Kvm = true }), options with { Kvm = true })
{
    public KvmTarget()
        : this(new QemuOptions())
    {
    }

    private protected override string Describe() => "kvm (nested VMX)";
}
