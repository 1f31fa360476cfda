using EptFuzz.Contract;
using EptFuzz.Reference.Rules;

namespace EptFuzz.Targets.Model;

/// <summary>
/// The reference model (EptFuzz.Reference) as a target: every probe is answered by evaluating the
/// model on the session's own copy of host memory. It never caches translations.
/// </summary>
public sealed class ModelTarget : ITarget
{
    public string Name => "model";

    public TargetTraits Traits =>
        TargetTraits.MemoryType | TargetTraits.AccessedDirtyWrites | TargetTraits.Walk | TargetTraits.Entries
        | TargetTraits.VmEntry | TargetTraits.Immediate | TargetTraits.AdvancedExitInfo | TargetTraits.Mbec | TargetTraits.TranslatedGpa | TargetTraits.TranslatedPermissions;

    /// <summary>The model's rule ids ("EPT-MISCONFIG-1", …) in index order: index i names bit i of <see cref="Observation.Rules"/>.</summary>
    public IReadOnlyList<string> RuleNames => RuleCatalog.Names;

    public ITargetSession Open(CpuCapabilities cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        return new ModelSession(cpu);
    }
}
