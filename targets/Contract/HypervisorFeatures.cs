namespace EptFuzz.Contract;

/// <summary>
/// What a hypervisor's EPT API implements. The in-tree implementation implements everything; an
/// external target declares its set (PROTOCOL.md, HELLO). A case that needs a feature the
/// hypervisor lacks is reported unsupported for it, never run and never a pass; the generator
/// never produces such a step.
/// </summary>
[Flags]
public enum HypervisorFeatures : uint
{
    None = 0,
    /// <summary><c>map</c> of 4 KiB pages.</summary>
    Map4K = 1 << 0,
    /// <summary><c>map</c> of 2 MiB pages.</summary>
    Map2M = 1 << 1,
    /// <summary><c>map</c> of 1 GiB pages.</summary>
    Map1G = 1 << 2,
    Unmap = 1 << 3,
    Protect = 1 << 4,
    Retype = 1 << 5,
    Split = 1 << 6,
    Merge = 1 << 7,
    /// <summary><c>memory</c> and <c>identity-map</c>.</summary>
    IdentityMap = 1 << 8,
    Invept = 1 << 9,
    /// <summary><c>eptp walk=5</c> (named fields; a raw EPTP needs nothing).</summary>
    Walk5 = 1 << 10,
    /// <summary><c>eptp ad=1</c>.</summary>
    AccessedDirty = 1 << 11,
    /// <summary><c>controls mbec=1</c>.</summary>
    Mbec = 1 << 12,
    /// <summary><c>guest</c>, <c>gmap</c>, <c>gedit</c>: guest page tables.</summary>
    GuestPaging = 1 << 13,

    All = (1u << 14) - 1,
}
