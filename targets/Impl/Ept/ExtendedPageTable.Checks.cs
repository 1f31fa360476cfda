using EptFuzz.Contract;

namespace EptFuzz.Impl.Ept;

// Input validation, in the precedence order of case-format.md: Unsupported, Unaligned, OutOfRange,
// InvalidPermission; the callers chain these before looking at what is mapped.
public sealed partial class ExtendedPageTable
{
    /// <summary>A page size must be 4K, 2M or 1G, and the processor must have it (CAP[16], CAP[17]).</summary>
    private ApiResult CheckPageSize(ulong size, out PageSize pageSize)
    {
        if (!LevelGeometry.TryPageSize(size, out pageSize))
        {
            return ApiResult.Unsupported;
        }

        return pageSize switch
        {
            PageSize.Size2M when !cpu.Page2M => ApiResult.Unsupported,
            PageSize.Size1G when !cpu.Page1G => ApiResult.Unsupported,
            _ => ApiResult.Ok,
        };
    }

    /// <summary>User-mode execute (bit 10) exists only on a processor with MBEC.</summary>
    private ApiResult CheckPermissionsSupported(EptPermissions permissions) =>
        (permissions & EptPermissions.UserModeExecute) != 0 && !cpu.Mbec ? ApiResult.Unsupported : ApiResult.Ok;

    /// <summary>
    /// Refuses what would be a misconfiguration on this processor: write without read
    /// (EPT-MISCONFIG-1), and execute (XS or XU) without read where execute-only is not
    /// supported (EPT-MISCONFIG-2, -3; XU counts whenever the processor has MBEC, because the
    /// control may be turned on later).
    /// </summary>
    private ApiResult CheckPermissionsValid(EptPermissions permissions)
    {
        bool read = (permissions & EptPermissions.ReadAccess) != 0;
        if (!read && (permissions & EptPermissions.WriteAccess) != 0)
        {
            return ApiResult.InvalidPermission;
        }

        bool execute = (permissions & (EptPermissions.ExecuteAccess | EptPermissions.UserModeExecute)) != 0;
        return !read && execute && !cpu.ExecuteOnly ? ApiResult.InvalidPermission : ApiResult.Ok;
    }

    /// <summary>EPT memory types 2, 3 and 7 are misconfigurations (EPT-MISCONFIG-5), refused like a bad permission set.</summary>
    private static ApiResult CheckMemoryType(MemoryType memoryType) =>
        EptBits.IsValidEptMemoryType(memoryType) ? ApiResult.Ok : ApiResult.InvalidPermission;

    /// <summary>A range [gpa, gpa+size): 4 KiB granular, non-empty, inside the walk's reach.</summary>
    private ApiResult CheckRange(Gpa gpa, ulong size)
    {
        if (size == 0 || ((gpa.Value | size) & (LevelGeometry.PageBytes - 1)) != 0)
        {
            return ApiResult.Unaligned;
        }

        return gpa.Value >= GpaLimit || size > GpaLimit - gpa.Value ? ApiResult.OutOfRange : ApiResult.Ok;
    }
}
