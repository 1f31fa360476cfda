using EptFuzz.Contract;

namespace EptFuzz.Harness.Cases;

// Operations on the implementation's API. Addresses and sizes are kept exactly as written even
// when they are unaligned or out of range: those are API results (Unaligned, OutOfRange, …) that
// the fuzzer must be able to ask for, not syntax errors.

/// <summary><c>map gpa=A hpa=B size=S perm=P [mt=T] [ipat=0/1]</c>.</summary>
public sealed record MapStep(Gpa Gpa, Hpa Hpa, ulong Size, EptPermissions Permissions, MemoryType? MemoryType = null, bool? IgnorePat = null) : Step
{
    public override string Verb => "map";

    public override StepCategory Category => StepCategory.Operation;

    public MemoryType EffectiveMemoryType => MemoryType ?? Contract.MemoryType.WB;
}

/// <summary><c>unmap gpa=A size=S</c>.</summary>
public sealed record UnmapStep(Gpa Gpa, ulong Size) : Step
{
    public override string Verb => "unmap";

    public override StepCategory Category => StepCategory.Operation;
}

/// <summary><c>protect gpa=A size=S perm=P</c>.</summary>
public sealed record ProtectStep(Gpa Gpa, ulong Size, EptPermissions Permissions) : Step
{
    public override string Verb => "protect";

    public override StepCategory Category => StepCategory.Operation;
}

/// <summary><c>retype gpa=A size=S mt=T [ipat=0/1]</c>.</summary>
public sealed record RetypeStep(Gpa Gpa, ulong Size, MemoryType MemoryType, bool? IgnorePat = null) : Step
{
    public override string Verb => "retype";

    public override StepCategory Category => StepCategory.Operation;
}

/// <summary><c>split gpa=A</c>.</summary>
public sealed record SplitStep(Gpa Gpa) : Step
{
    public override string Verb => "split";

    public override StepCategory Category => StepCategory.Operation;
}

/// <summary><c>merge gpa=A size=S</c>.</summary>
public sealed record MergeStep(Gpa Gpa, ulong Size) : Step
{
    public override string Verb => "merge";

    public override StepCategory Category => StepCategory.Operation;
}

/// <summary><c>memory start=A end=B mt=T</c>: one range [A, B) of the guest's memory map; A &lt; B.</summary>
public sealed record MemoryStep(Gpa Start, Gpa End, MemoryType MemoryType) : Step
{
    public override string Verb => "memory";

    public override StepCategory Category => StepCategory.Operation;
}

/// <summary><c>identity-map [offset=D offset-from=A]</c>; the two keys are written together or not at all.</summary>
public sealed record IdentityMapStep(ulong? Offset = null, Gpa? OffsetFrom = null) : Step
{
    public override string Verb => "identity-map";

    public override StepCategory Category => StepCategory.Operation;
}

/// <summary><c>invept type=single/global</c>.</summary>
public sealed record InveptStep(InveptType Type) : Step
{
    public override string Verb => "invept";

    public override StepCategory Category => StepCategory.Operation;
}
