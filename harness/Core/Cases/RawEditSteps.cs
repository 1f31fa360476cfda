using EptFuzz.Contract;

namespace EptFuzz.Harness.Cases;

// Raw edits: plain memory writes that build states the API refuses to make. A translation cached
// before one of them may be used until the next invept (the runner counts those as stale-allowed).

/// <summary><c>edit gpa=A level=L [set=M] [clear=M] [leaf-hpa=B]</c>.</summary>
public sealed record EditStep(Gpa Gpa, EptLevel Level, ulong? Set = null, ulong? Clear = null, Hpa? LeafHpa = null) : Step
{
    public override string Verb => "edit";

    public override StepCategory Category => StepCategory.Operation;
}

/// <summary><c>poke hpa=A value=V</c>: 8 bytes of host memory.</summary>
public sealed record PokeStep(Hpa Hpa, ulong Value) : Step
{
    public override string Verb => "poke";

    public override StepCategory Category => StepCategory.Operation;
}

/// <summary><c>gmap gva=V gpa=P size=S perm=[w][u][x]</c>: needs guest paging on.</summary>
public sealed record GMapStep(Gva Gva, Gpa Gpa, ulong Size, GuestPagePermissions Permissions) : Step
{
    public override string Verb => "gmap";

    public override StepCategory Category => StepCategory.Operation;
}

/// <summary><c>gedit gva=V level=L [set=M] [clear=M]</c>: needs guest paging on.</summary>
public sealed record GEditStep(Gva Gva, EptLevel Level, ulong? Set = null, ulong? Clear = null) : Step
{
    public override string Verb => "gedit";

    public override StepCategory Category => StepCategory.Operation;
}
