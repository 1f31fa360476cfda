namespace EptFuzz.Harness.Cases;

/// <summary>
/// The <c>perm=</c> of <c>gmap</c>: letters from <c>w u x</c> (or <c>none</c>). A guest leaf is
/// always present and readable; <c>x</c> absent means NX when the guest has <c>nxe=1</c>.
/// </summary>
[Flags]
public enum GuestPagePermissions : byte
{
    None = 0,
    Writable = 1,
    User = 2,
    Executable = 4,
    All = Writable | User | Executable,
}
