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
        OracleReport report;
        try
        {
            report = OracleBoot.Run(emulator, DiskImage.Build(new ScriptBuilder()));
        }
        catch (TargetFailureException e) when (emulator.Unavailable() is null)
        {
            // Said as what it is: the target cannot run at all, not one case that failed.
            string prefix = emulator.Name + ": ";
            string detail = e.Message.StartsWith(prefix, StringComparison.Ordinal) ? e.Message[prefix.Length..] : e.Message;
            throw new TargetFailureException(emulator.Name, $"the capability boot failed, so no case can run: {detail}", e);
        }

        var cpu = EmulatedCpu.FromReport(Describe(), report, out string? reason)
            ?? throw new TargetFailureException(emulator.Name, $"unavailable: {reason}");
        return cpu with { IgnoresLargeLeafBit12 = IsBochs, IgnoresEptWriteForGuestAccessedDirty = IsBochs, ReportsGuestWalkViolationAsWriteOnly = IsBochs };
    }

    private protected virtual bool IsBochs => false;

    private protected abstract string Describe();
}
